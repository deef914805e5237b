//! Doctor checks for templates installed by `agentlab template install`: the marker, the
//! guest protocol of the image's runner, and (with local storage) a copy on every node
//! placement may use.

use agentlab_core::api::guest::GUEST_PROTOCOL_VERSION;
use serde_json::Value;

use crate::client::{Api, Params, lenient_u64, seg};
use crate::doctor::{CheckResult, fail, pass};
use crate::options::PveOptions;
use crate::template::parse_marker;

const REBUILD: &str = "agentlab image build && agentlab template install";

/// Checks template `vmid` on `node` whose config is `cfg`.
pub(crate) async fn checks(
    api: &Api,
    opts: &PveOptions,
    vmid: u32,
    node: &str,
    cfg: &Value,
) -> Vec<CheckResult> {
    let desc = cfg
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(marker) = parse_marker(desc) else {
        return vec![fail(
            "template.marker",
            format!(
                "VM {vmid} carries no AgentLab template marker (not built by `agentlab image build`)"
            ),
            REBUILD,
        )];
    };
    let mut out = vec![pass(
        "template.marker",
        format!("template {} from manifest {}", marker.name, marker.manifest),
    )];
    out.push(if marker.guest_protocol == GUEST_PROTOCOL_VERSION {
        pass(
            "template.protocol",
            format!("runner speaks guest protocol {GUEST_PROTOCOL_VERSION}"),
        )
    } else {
        fail(
            "template.protocol",
            format!(
                "runner speaks guest protocol {}, the daemon {GUEST_PROTOCOL_VERSION}",
                marker.guest_protocol
            ),
            format!("{REBUILD} --replace"),
        )
    });
    out.push(node_copies(api, opts, &marker.name, node).await);
    out
}

/// With local disk storage, every node placement may use needs its own copy.
async fn node_copies(api: &Api, opts: &PveOptions, name: &str, node: &str) -> CheckResult {
    let storages = api
        .get(&format!("/nodes/{}/storage", seg(node)), &Params::new())
        .await
        .unwrap_or(Value::Null);
    let shared = storages
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s.get("storage").and_then(Value::as_str) == Some(&opts.storage))
        .and_then(|s| s.get("shared").and_then(lenient_u64))
        == Some(1);
    if shared {
        return pass(
            "template.nodes",
            format!("{} is shared: one template serves every node", opts.storage),
        );
    }
    let wanted: Vec<String> = if opts.node == "auto" {
        let nodes = api
            .get("/nodes", &Params::new())
            .await
            .unwrap_or(Value::Null);
        nodes
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n.get("status").and_then(Value::as_str) != Some("offline"))
            .filter_map(|n| n.get("node").and_then(Value::as_str).map(str::to_owned))
            .collect()
    } else {
        vec![opts.node.clone()]
    };
    let vms = api
        .get("/cluster/resources", &vec![("type", "vm".to_owned())])
        .await
        .unwrap_or(Value::Null);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for n in &wanted {
        let mut hit = None;
        for vm in vms.as_array().into_iter().flatten() {
            let on = vm.get("node").and_then(Value::as_str) == Some(n);
            let tmpl = vm.get("template").and_then(lenient_u64) == Some(1);
            let Some(id) = vm.get("vmid").and_then(lenient_u64).filter(|_| on && tmpl) else {
                continue;
            };
            let cfg = api
                .get(
                    &format!("/nodes/{}/qemu/{id}/config", seg(n)),
                    &Params::new(),
                )
                .await
                .unwrap_or(Value::Null);
            let desc = cfg
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if parse_marker(desc).is_some_and(|m| m.name == name) {
                hit = Some(id);
                break;
            }
        }
        match hit {
            Some(id) => found.push(format!("{n}={id}")),
            None => missing.push(n.clone()),
        }
    }
    if missing.is_empty() {
        pass(
            "template.nodes",
            format!("template {name} on every node: {}", found.join(", ")),
        )
    } else {
        fail(
            "template.nodes",
            format!(
                "{} is local storage and template {name} is missing on {}",
                opts.storage,
                missing.join(", ")
            ),
            format!(
                "agentlab template install --name {name} {}",
                missing
                    .iter()
                    .map(|n| format!("--node {n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        )
    }
}
