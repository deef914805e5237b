//! `agentlab status`: daemon version, backend health and counts per state.

use std::collections::BTreeMap;

use agentlab_core::api::control::StatusResponse;

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::{kv, print_json};

/// Runs `agentlab status`.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Code> {
    let status: StatusResponse = ctx.client.get("/v1/status").await?;
    if ctx.json {
        print_json(&status)?;
    } else {
        print!(
            "{}",
            render(&status, &ctx.client.socket().display().to_string())
        );
    }
    Ok(if status.backend_healthy {
        Code::Ok
    } else {
        Code::Failure
    })
}

/// The human form of a status answer.
pub fn render(s: &StatusResponse, socket: &str) -> String {
    let health = match (s.backend_healthy, &s.backend_detail) {
        (true, _) => "healthy".to_owned(),
        (false, Some(detail)) => format!("UNHEALTHY: {detail}"),
        (false, None) => "UNHEALTHY".to_owned(),
    };
    kv(&[
        ("agentlabd", s.version.clone()),
        ("socket", socket.to_owned()),
        ("backend", format!("{} ({health})", s.backend)),
        ("sandboxes", counts(&s.sandboxes)),
        ("jobs", counts(&s.jobs)),
    ])
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".to_owned();
    }
    map.iter()
        .map(|(state, n)| format!("{state} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_unhealthy_backend() {
        let s = StatusResponse {
            version: "0.1.0".into(),
            backend: "pve".into(),
            backend_healthy: false,
            backend_detail: Some("connection refused".into()),
            sandboxes: BTreeMap::from([("READY".into(), 2), ("RUNNING".into(), 1)]),
            jobs: BTreeMap::new(),
        };
        let out = render(&s, "/tmp/a.sock");
        assert!(
            out.contains("backend:    pve (UNHEALTHY: connection refused)"),
            "{out}"
        );
        assert!(out.contains("sandboxes:  READY 2, RUNNING 1"), "{out}");
        assert!(out.contains("jobs:       none"), "{out}");
    }
}
