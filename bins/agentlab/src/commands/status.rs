//! `agentlab status`: daemon version, backend health and counts per state.

use std::collections::BTreeMap;

use agentlab_core::api::control::StatusResponse;
use agentlab_core::hypervisor::NodeStatus;

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::{Table, kv, print_json};

/// Runs `agentlab status`.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Code> {
    let status: StatusResponse = ctx.client.get("/v1/status").await?;
    if ctx.json {
        print_json(&status)?;
    } else {
        print!("{}", render(&status, &ctx.client.target()));
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
    let mut out = kv(&[
        ("agentlabd", s.version.clone()),
        ("socket", socket.to_owned()),
        ("backend", format!("{} ({health})", s.backend)),
        ("sandboxes", counts(&s.sandboxes)),
        ("jobs", counts(&s.jobs)),
    ]);
    if let Some(nodes) = &s.nodes {
        out.push_str(&nodes_table(nodes));
    }
    if let Some(e) = &s.nodes_error {
        out.push_str(&format!("nodes: cannot read node health: {e}\n"));
    }
    for d in &s.disks {
        let warn = if d.above {
            " (above the warning threshold)"
        } else {
            ""
        };
        out.push_str(&format!(
            "disk: {} {}% used{warn}\n",
            d.path, d.used_percent
        ));
    }
    out
}

/// One row per node: health, free memory and clone tasks against the per-node limit.
fn nodes_table(nodes: &[NodeStatus]) -> String {
    let mut t = Table::new(&["NODE", "HEALTH", "FREE MEMORY", "CLONE TASKS"]);
    for n in nodes {
        let (health, free) = if n.online {
            (
                "online",
                format!("{} of {}", gib(n.mem_free), gib(n.mem_total)),
            )
        } else {
            ("OFFLINE", "-".to_owned())
        };
        t.row(vec![
            n.name.clone(),
            health.to_owned(),
            free,
            format!("{}/{}", n.clone_tasks, n.clone_limit),
        ]);
    }
    t.render()
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
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
            nodes: None,
            nodes_error: None,
            disks: Vec::new(),
        };
        let out = render(&s, "/tmp/a.sock");
        assert!(
            out.contains("backend:    pve (UNHEALTHY: connection refused)"),
            "{out}"
        );
        assert!(out.contains("sandboxes:  READY 2, RUNNING 1"), "{out}");
        assert!(out.contains("jobs:       none"), "{out}");
        assert!(
            !out.contains("NODE"),
            "no node table without node health: {out}"
        );
    }

    #[test]
    fn renders_node_health_and_capacity() {
        let node = |name: &str, online: bool, free: u64, tasks: u32| NodeStatus {
            name: name.into(),
            online,
            mem_total: 64 << 30,
            mem_free: free << 30,
            clone_tasks: tasks,
            clone_limit: 3,
        };
        let s = StatusResponse {
            version: "0.1.0".into(),
            backend: "pve".into(),
            backend_healthy: true,
            backend_detail: None,
            sandboxes: BTreeMap::from([("LOST".into(), 1)]),
            jobs: BTreeMap::new(),
            nodes: Some(vec![node("pve1", true, 24, 2), node("pve2", false, 0, 0)]),
            nodes_error: None,
            disks: Vec::new(),
        };
        let out = render(&s, "/tmp/a.sock");
        let row = |name: &str| {
            out.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no row for {name}: {out}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(row("pve1"), "pve1 online 24.0 GiB of 64.0 GiB 2/3");
        assert_eq!(row("pve2"), "pve2 OFFLINE - 0/3");
        assert!(out.contains("sandboxes:  LOST 1"), "{out}");
    }
}
