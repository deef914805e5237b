//! `doctor`'s per-node checks: the agent bridge (with the real API error when the network
//! cannot be read), and for every node its health, free memory and whether placement can use
//! it for the template ([`crate::placement::serve`]) or why not.

use serde_json::Value;

use crate::client::Api;
use crate::doctor::{CheckResult, fail, pass};
use crate::options::PveOptions;
use crate::placement::{ClusterView, NodeInfo, cluster_view, node_report};
use crate::pve::ClusterVm;

/// Whether `bridge` exists on `node`; an API error is reported as itself.
pub(crate) async fn check_bridge(api: &Api, node: &str, bridge: &str) -> CheckResult {
    let nets = match api
        .get(
            &format!("/nodes/{node}/network"),
            &vec![("type", "any_bridge".to_owned())],
        )
        .await
    {
        Ok(v) => v,
        Err(e) => {
            return fail(
                "bridge",
                format!("cannot list the networks of {node}: {e}"),
                format!("grant Sys.Audit on /nodes/{node} or fix the cause above"),
            );
        }
    };
    let found = nets
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n.get("iface").and_then(Value::as_str) == Some(bridge));
    if found {
        pass("bridge", format!("{bridge} exists on {node}"))
    } else {
        fail(
            "bridge",
            format!("{bridge} not found on {node}"),
            format!("create bridge {bridge} (agentlab net setup) on every node"),
        )
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

fn health(n: &NodeInfo, clones: Option<usize>) -> String {
    if !n.online {
        return "offline".to_owned();
    }
    let tasks = match clones {
        Some(1) => ", 1 clone task running".to_owned(),
        Some(c) => format!(", {c} clone tasks running"),
        None => String::new(),
    };
    format!(
        "online, {} of {} memory free{tasks}",
        gib(n.free()),
        gib(n.maxmem)
    )
}

/// Clone tasks PVE runs on `node` (any client's); `None` when the list cannot be read.
async fn running_clones(api: &Api, node: &str) -> Option<usize> {
    let list = api
        .get(
            &format!("/nodes/{node}/tasks"),
            &vec![
                ("source", "active".to_owned()),
                ("typefilter", "qmclone".to_owned()),
            ],
        )
        .await
        .ok()?;
    Some(list.as_array().map_or(0, Vec::len))
}

/// One `node.<name>` result per node: health, capacity and the placement verdict. A node
/// placement cannot use is a failure only when it is offline or pinned by `pve.node`.
pub(crate) async fn check_nodes(
    api: &Api,
    opts: &PveOptions,
    template_vmid: u32,
) -> Vec<CheckResult> {
    let view = match view(api, template_vmid).await {
        Ok(v) => v,
        Err(detail) => {
            return vec![fail(
                "nodes",
                detail,
                "grant Sys.Audit/VM.Audit so the token can read /cluster/resources",
            )];
        }
    };
    let full = false;
    let report = node_report(&view, &opts.storage, full);
    let usable = report.iter().filter(|(_, r)| r.is_ok()).count();
    let mut clones = Vec::new();
    for (n, _) in &report {
        clones.push(if n.online {
            running_clones(api, &n.name).await
        } else {
            None
        });
    }
    let mut out: Vec<CheckResult> = report
        .into_iter()
        .zip(clones)
        .map(|((n, verdict), clones)| {
            let health = |n: &NodeInfo| health(n, clones);
            let name = format!("node.{}", n.name);
            let pinned = opts.node == n.name;
            match verdict {
                Ok(plan) if plan.source_node == n.name && plan.node == n.name => pass(
                    &name,
                    format!("{}; placement uses it (clones template {} there)", health(&n), plan.source_vmid),
                ),
                Ok(plan) => pass(
                    &name,
                    format!("{}; placement uses it (clone from {} on shared storage)", health(&n), plan.source_node),
                ),
                Err(why) if !n.online => fail(&name, why, format!("bring node {} back online; its sandboxes are LOST meanwhile", n.name)),
                Err(why) if pinned => fail(&name, format!("pinned by pve.node but unusable: {why}"), "use shared storage for the template, put a template copy on that node, or set pve.node: auto"),
                Err(why) => pass(&name, format!("{}; placement does not use it: {why}", health(&n))),
            }
        })
        .collect();
    if usable == 0 {
        out.push(fail(
            "nodes",
            "no node can serve the template",
            "check the template and the storage configuration",
        ));
    }
    out
}

async fn view(api: &Api, template_vmid: u32) -> Result<ClusterView, String> {
    let vms = api
        .get("/cluster/resources", &vec![("type", "vm".to_owned())])
        .await
        .map_err(|e| e.to_string())?;
    let vms: Vec<ClusterVm> = crate::pve::parse_cluster_vms(&vms);
    cluster_view(api, &vms, template_vmid)
        .await
        .map_err(|e| e.to_string())
}
