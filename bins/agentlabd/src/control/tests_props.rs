//! Property tests: random bytes and random JSON sent to every control route that parses a
//! body or a query never panic and never get a 5xx; every refusal is the JSON error envelope
//! with a code.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

use agentlab_core::config::LimitsConfig;

use super::tests::setup_with;

/// Routes with a body.
const BODY_ROUTES: [&str; 7] = [
    "/v1/sandboxes",
    "/v1/sandboxes/9100/lease/renew",
    "/v1/jobs",
    "/v1/workspaces",
    "/v1/workspaces/w/attach",
    "/v1/workspaces/w/rebind",
    "/v1/profiles/validate",
];

/// Routes with a query string.
const QUERY_ROUTES: [&str; 4] = [
    "/v1/sandboxes",
    "/v1/jobs",
    "/v1/sandboxes/9100/events",
    "/v1/jobs/job-00000000000000000000000000/events",
];

/// Field names the bodies know, so random objects often reach the validators.
const KEYS: [&str; 12] = [
    "profile",
    "name",
    "ttl_minutes",
    "keepalive",
    "workspace",
    "repo",
    "git_ref",
    "task",
    "agent",
    "size_gb",
    "vmid",
    "keep_old",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(
            &[
                "https://h/r",
                "file:///x",
                "-x",
                "main",
                "../../a",
                "yolo-ephemeral"
            ][..]
        )
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(&KEYS[..]).prop_map(str::to_owned),
                    ".{0,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        "[\\[\\]{}:,\\- a'\"#\n]{0,200}".prop_map(String::into_bytes),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(
            &[
                "state", "profile", "all", "limit", "tail", "after", "follow"
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z]{1,6}",
    ];
    let value = prop_oneof!["[ -~]{0,12}", any::<i64>().prop_map(|n| n.to_string())];
    prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| {
                let v: String = v
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// Sends one request and checks the answer's shape.
async fn check(t: &super::tests::T, method: Method, uri: &str, body: Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(!status.is_server_error(), "{uri}: {status} {bytes:?}");
    if !status.is_success() {
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{uri}: {status}: not JSON ({e}): {bytes:?}"));
        let code = v["error"]["code"].as_str().unwrap_or_default();
        assert!(!code.is_empty(), "{uri}: {v}");
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_bodies_get_typed_errors(route in prop::sample::select(&BODY_ROUTES[..]), body in body()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = setup_with(LimitsConfig::default()).await;
            check(&t, Method::POST, route, body).await;
        });
    }

    #[test]
    fn random_queries_get_typed_errors(route in prop::sample::select(&QUERY_ROUTES[..]), q in query()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let t = setup_with(LimitsConfig::default()).await;
            check(&t, Method::GET, &format!("{route}?{q}"), Vec::new()).await;
        });
    }
}
