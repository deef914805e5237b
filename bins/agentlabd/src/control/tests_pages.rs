//! Pagination of the list routes (cursors stable under inserts, limits enforced with typed
//! errors), status counts, and follow streams that receive pushed lines.

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use agentlab_core::config::LimitsConfig;
use agentlab_core::testkit::store::{plus_secs, sample_job, t0};
use agentlab_core::{EventKind, JobState, NewEvent};

use crate::control::page::NEXT_CURSOR;
use crate::control::tests::{T, setup_with};

fn limits(default: u32, max: u32) -> LimitsConfig {
    LimitsConfig {
        list_default_limit: default,
        list_max_limit: max,
        ..LimitsConfig::default()
    }
}

/// GET `uri`: status, JSON body and the next cursor.
async fn get(t: &T, uri: &str) -> (StatusCode, Value, Option<String>) {
    let req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let next = resp
        .headers()
        .get(NEXT_CURSOR)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), next)
}

async fn insert_jobs(t: &T, n: usize, from_secs: i64) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        // Pairs share a creation time: the cursor must break ties.
        let mut job = sample_job(plus_secs(t0(), from_secs + (i / 2) as i64));
        job.state = if i % 3 == 0 {
            JobState::Completed
        } else {
            JobState::Queued
        };
        t.lab.deps().store.insert_job(&job).await.unwrap();
        ids.push(job.id.to_string());
    }
    ids
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn job_pages_follow_cursors_stably_while_jobs_are_added() {
    let t = setup_with(limits(10, 20)).await;
    let mut expected = insert_jobs(&t, 25, 0).await;
    expected.reverse();

    // No limit: the default page, never everything.
    let (s, first, next) = get(&t, "/v1/jobs").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&first), expected[..10]);
    let mut cursor = next.expect("a full first page names the next one");

    let mut seen = ids(&first);
    let mut added = Vec::new();
    let mut pages = 1;
    loop {
        // A newer job between pages must not shift or enter the remaining pages.
        added.extend(insert_jobs(&t, 1, 1000 + pages).await);
        let (s, page, next) = get(&t, &format!("/v1/jobs?limit=7&cursor={cursor}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(ids(&page).len() <= 7);
        seen.extend(ids(&page));
        pages += 1;
        match next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(seen, expected, "every job once, newest first");
    assert!(added.iter().all(|a| !seen.contains(a)));

    // The newest jobs come first on a fresh listing; a state filter pages too.
    let (_, fresh, _) = get(&t, "/v1/jobs?limit=3").await;
    let mut newest = added.clone();
    newest.reverse();
    assert_eq!(ids(&fresh), newest[..3]);
    let (_, done, next) = get(&t, "/v1/jobs?state=COMPLETED&limit=20").await;
    // Every third of the 25, and each job added between pages.
    assert_eq!(ids(&done).len(), 9 + added.len());
    assert!(next.is_none(), "the last page has no cursor");
}

#[tokio::test]
async fn list_limits_and_cursors_are_checked_with_typed_errors() {
    let t = setup_with(limits(10, 20)).await;
    let job = sample_job(t0());
    t.lab.deps().store.insert_job(&job).await.unwrap();
    let limit = format!("/v1/jobs/{}/events?limit=21", job.id);
    for uri in [
        "/v1/jobs?limit=21",
        "/v1/jobs?limit=0",
        "/v1/sandboxes?limit=21",
        "/v1/workspaces?limit=100",
        "/v1/profiles?limit=0",
        &limit,
    ] {
        let v = t
            .expect_err(
                Method::GET,
                uri,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                "out_of_range",
            )
            .await;
        assert_eq!(v["error"]["details"]["max"], 20, "{uri}: {v}");
    }
    for uri in [
        "/v1/jobs?cursor=nonsense",
        "/v1/jobs?cursor=1.x",
        "/v1/sandboxes?cursor=12",
    ] {
        t.expect_err(
            Method::GET,
            uri,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        )
        .await;
    }
}

#[tokio::test]
async fn sandboxes_profiles_workspaces_and_events_page_by_cursor() {
    let t = setup_with(limits(2, 5)).await;
    for name in ["ws-a", "ws-b", "ws-c"] {
        t.lab.create_workspace(name, 1).await.unwrap();
    }
    let mut names = Vec::new();
    let mut uri = "/v1/workspaces".to_owned();
    loop {
        let (s, page, next) = get(&t, &uri).await;
        assert_eq!(s, StatusCode::OK);
        names.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|w| w["name"].as_str().unwrap().to_owned()),
        );
        let Some(c) = next else { break };
        uri = format!("/v1/workspaces?cursor={c}");
    }
    assert_eq!(names, ["ws-a", "ws-b", "ws-c"]);

    let (_, all_profiles, _) = get(&t, "/v1/profiles?limit=5").await;
    let (_, first, next) = get(&t, "/v1/profiles?limit=1").await;
    assert_eq!(first[0], all_profiles[0]);
    if all_profiles.as_array().unwrap().len() > 1 {
        let (_, second, _) = get(
            &t,
            &format!("/v1/profiles?limit=1&cursor={}", next.unwrap()),
        )
        .await;
        assert_eq!(second[0], all_profiles[1]);
    }

    let job = sample_job(t0());
    t.lab.deps().store.insert_job(&job).await.unwrap();
    for i in 0..5 {
        let ev =
            NewEvent::new(t0(), EventKind::JobLog, format!("line {i}")).job(Some(job.id.clone()));
        t.lab.deps().store.append_event(ev).await.unwrap();
    }
    let mut lines = Vec::new();
    let mut uri = format!("/v1/jobs/{}/events", job.id);
    loop {
        let (_, page, next) = get(&t, &uri).await;
        let page = page.as_array().unwrap().clone();
        assert!(page.len() <= 2);
        lines.extend(
            page.iter()
                .map(|e| e["message"].as_str().unwrap().to_owned()),
        );
        let Some(c) = next else { break };
        uri = format!("/v1/jobs/{}/events?after={c}", job.id);
    }
    assert_eq!(
        lines,
        (0..5).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    let unique: HashSet<&String> = lines.iter().collect();
    assert_eq!(unique.len(), 5);
}

#[tokio::test]
async fn status_counts_follow_the_records() {
    let t = setup_with(LimitsConfig::default()).await;
    insert_jobs(&t, 7, 0).await;
    let (s, v, _) = get(&t, "/v1/status").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["jobs"]["COMPLETED"], 3);
    assert_eq!(v["jobs"]["QUEUED"], 4);
    let queued = agentlab_core::JobFilter {
        states: vec![JobState::Queued],
        ..Default::default()
    };
    let id = t.lab.list_jobs(&queued).await.unwrap()[0].id.clone();
    t.lab.cancel_job(&id).await.unwrap();
    let (_, v, _) = get(&t, "/v1/status").await;
    assert_eq!(v["jobs"]["CANCELLED"], 1, "{v}");
    assert_eq!(v["jobs"]["QUEUED"], 3, "{v}");
    assert_eq!(v["jobs"]["COMPLETED"], 3, "{v}");
}

/// A line appended while a client follows reaches it without any timer firing: the test
/// runs on paused time, so a poll (or the keep-alive) would show as elapsed virtual time.
#[tokio::test(start_paused = true)]
async fn follow_receives_appended_lines_pushed_without_a_timer() {
    let t = setup_with(LimitsConfig::default()).await;
    let job = sample_job(t0());
    t.lab.deps().store.insert_job(&job).await.unwrap();
    let before = NewEvent::new(t0(), EventKind::JobLog, "backlog").job(Some(job.id.clone()));
    t.lab.deps().store.append_event(before).await.unwrap();
    let req = Request::builder()
        .uri(format!("/v1/jobs/{}/events?follow=true&tail=10", job.id))
        .body(Body::empty())
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut next_line = async || -> Value {
        let frame = body.frame().await.unwrap().unwrap();
        serde_json::from_slice(frame.data_ref().unwrap()).unwrap()
    };
    assert_eq!(next_line().await["message"], "backlog");
    for i in 0..3 {
        let start = tokio::time::Instant::now();
        let ev =
            NewEvent::new(t0(), EventKind::JobLog, format!("live {i}")).job(Some(job.id.clone()));
        t.lab.deps().store.append_event(ev).await.unwrap();
        // Another job's line does not reach this stream.
        let other = NewEvent::new(t0(), EventKind::JobLog, "other job");
        t.lab.deps().store.append_event(other).await.unwrap();
        let got = next_line().await;
        assert_eq!(got["message"], format!("live {i}"));
        assert_eq!(
            start.elapsed(),
            std::time::Duration::ZERO,
            "the line was pushed, not polled"
        );
    }
    // Idle: a keep-alive after KEEPALIVE, then the job ends and the stream closes.
    assert_eq!(next_line().await, serde_json::json!({}));
    let mut done = t.lab.job(&job.id).await.unwrap();
    done.state = JobState::Completed;
    t.lab
        .deps()
        .store
        .update_job(&done, JobState::Queued)
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    assert!(body.frame().await.is_none(), "the stream ends with the job");
    assert_eq!(
        start.elapsed(),
        std::time::Duration::ZERO,
        "ended by the pushed job write"
    );
}

/// Every query key the OpenAPI document lists is accepted by its route's handler (not
/// `invalid_query`), and on those routes a key it does not list is refused: the document and
/// the handlers agree.
#[tokio::test]
async fn documented_query_keys_are_the_ones_the_routes_accept() {
    let t = setup_with(LimitsConfig::default()).await;
    let job = sample_job(t0());
    t.lab.deps().store.insert_job(&job).await.unwrap();
    let sb = agentlab_core::testkit::store::sample_sandbox(
        agentlab_core::Vmid::new(9100).unwrap(),
        t0(),
    );
    t.lab.deps().store.insert_sandbox(&sb).await.unwrap();
    let doc = crate::control::openapi::document();
    let sample = |ty: &str, name: &str| match (ty, name) {
        ("boolean", _) => "false",
        (_, "state") => "READY",
        ("integer", _) => "5",
        _ => "zzz",
    };
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let Some(op) = ops.get("get") else { continue };
        let concrete = path
            .replace("{id}", job.id.as_str())
            .replace("{vmid}", "9100");
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        for p in params.iter().filter(|p| p["in"] == "query") {
            let name = p["name"].as_str().unwrap();
            let mut value = sample(p["schema"]["type"].as_str().unwrap(), name);
            if path == "/v1/jobs" && name == "state" {
                value = "QUEUED";
            }
            let (status, body, _) = get(&t, &format!("{concrete}?{name}={value}")).await;
            assert_ne!(
                body["error"]["code"], "invalid_query",
                "{path}?{name}={value}: {status} {body}"
            );
            checked += 1;
        }
        // Routes with a query refuse keys they do not know; the others ignore queries.
        if !params.iter().any(|p| p["in"] == "query") {
            continue;
        }
        let (status, body, _) = get(&t, &format!("{concrete}?bogus=1")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?bogus=1: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{path}: {body}");
    }
    assert!(checked >= 20, "only {checked} documented keys");
}
