//! The simulator's own control endpoints, outside PVE's API (`/_sim/…`, same token), so a
//! standalone `pve-sim` can be driven like the in-process [`super::Simulator`] methods:
//! `POST /_sim/nodes/{node}/offline` takes a node down as a power loss would,
//! `POST /_sim/nodes/{node}/online` brings it back. Not recorded, not schema-validated.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::BootEvent;
use super::server::{SimInner, authorized};
use super::state::Power;

impl SimInner {
    /// See [`super::Simulator::set_node_online`].
    pub fn set_node_online(&self, node: &str, online: bool) {
        let mut stopped = Vec::new();
        {
            let mut st = self.state();
            if online {
                st.offline.remove(node);
            } else {
                st.offline.insert(node.to_owned());
                for (id, vm) in st.vms.iter_mut().filter(|(_, vm)| vm.node == node) {
                    if vm.power != Power::Stopped {
                        stopped.push(*id);
                    }
                    vm.power = Power::Stopped;
                    vm.agent_ready_at = None;
                }
            }
        }
        for vmid in stopped {
            self.emit(&BootEvent::Stopped { vmid });
        }
    }
}

/// Answers a `/_sim/…` request; `None` for any other path.
pub fn handle(inner: &SimInner, method: &str, path: &str, headers: &HeaderMap) -> Option<Response> {
    let rest = path.strip_prefix("/_sim/")?;
    let reply = |status: StatusCode, message: &str| {
        (
            status,
            axum::Json(json!({"data": null, "message": message})),
        )
            .into_response()
    };
    if !authorized(inner, headers) {
        return Some(reply(StatusCode::UNAUTHORIZED, "Authentication failed!"));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let (node, online) = match (method, parts.as_slice()) {
        ("POST", ["nodes", node, "online"]) => (*node, true),
        ("POST", ["nodes", node, "offline"]) => (*node, false),
        _ => {
            return Some(reply(
                StatusCode::NOT_IMPLEMENTED,
                &format!("Method '{method} {path}' not implemented"),
            ));
        }
    };
    if !inner.config.nodes.iter().any(|n| n.name == node) {
        return Some(reply(
            StatusCode::NOT_FOUND,
            &format!("no node {node} in the simulator"),
        ));
    }
    inner.set_node_online(node, online);
    Some(reply(
        StatusCode::OK,
        if online { "online" } else { "offline" },
    ))
}
