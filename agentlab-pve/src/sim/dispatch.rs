//! Routes a validated request (method + schema path template) to its handler.

use std::sync::Arc;

use super::qemu::HResult;
use super::server::{ApiErr, Ctx, SimInner};
use super::{acl, clone, cluster, guest_exec, images, power, qemu};

/// Calls the handler for `method template`; 501 for schema methods the simulator lacks.
pub fn dispatch(inner: &Arc<SimInner>, method: &str, template: &str, ctx: &Ctx) -> HResult {
    const VM: &str = "/nodes/{node}/qemu/{vmid}";
    acl::check(inner, method, template, ctx)?;
    let offline = ctx
        .get("node")
        .filter(|_| template.starts_with("/nodes/{node}"))
        .filter(|node| {
            inner.config.nodes.iter().any(|n| n.name == *node) && !inner.node_online(node)
        });
    if let Some(node) = offline {
        // pveproxy cannot forward to an offline node.
        let message = format!(
            "Errors during connection establishment, proxy handler: connect to {node}:8006 failed: No route to host"
        );
        return Err(ApiErr {
            status: 595,
            message,
            errors: None,
        });
    }
    let rest = template.strip_prefix(VM);
    match (method, template, rest) {
        ("GET", "/version", _) => cluster::version(inner),
        ("GET", "/cluster/resources", _) => cluster::resources(inner, ctx),
        ("GET", "/cluster/nextid", _) => cluster::nextid(inner, ctx),
        ("GET", "/nodes", _) => cluster::nodes(inner),
        ("GET", "/nodes/{node}/network", _) => cluster::network(inner, ctx),
        ("GET", "/nodes/{node}/storage", _) => cluster::storage_list(inner, ctx),
        ("GET", "/nodes/{node}/storage/{storage}/content", _) => cluster::content(inner, ctx),
        ("POST", "/nodes/{node}/storage/{storage}/content", _) => cluster::alloc(inner, ctx),
        ("GET", "/nodes/{node}/storage/{storage}/content/{volume}", _) => {
            cluster::volume_info(inner, ctx)
        }
        ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}", _) => {
            cluster::delete_volume(inner, ctx)
        }
        ("GET", "/nodes/{node}/tasks/{upid}/status", _) => cluster::task(inner, ctx, false),
        ("GET", "/nodes/{node}/tasks/{upid}/log", _) => cluster::task(inner, ctx, true),
        ("DELETE", "/nodes/{node}/tasks/{upid}", _) => {
            Ok((inner.stop_task(ctx.req("node"), ctx.req("upid"))?, None))
        }
        ("GET", "/nodes/{node}/tasks", _) => Ok((
            inner.task_list(
                ctx.req("node"),
                ctx.get("source"),
                ctx.get("typefilter"),
                ctx.get("vmid"),
            ),
            None,
        )),
        ("GET", "/access/permissions", _) => cluster::permissions(inner),
        ("POST", "/nodes/{node}/storage/{storage}/upload", _) => images::upload(inner, ctx),
        ("POST", "/nodes/{node}/qemu", _) => images::create(inner, ctx),
        ("POST", _, Some("/template")) => images::template(inner, ctx),
        ("DELETE", _, Some("")) => qemu::destroy(inner, ctx),
        ("POST", _, Some("/clone")) => clone::clone(inner, ctx),
        ("GET", _, Some("/config")) => qemu::get_config(inner, ctx),
        ("PUT", _, Some("/config")) => qemu::set_config(inner, ctx, false),
        ("POST", _, Some("/config")) => qemu::set_config(inner, ctx, true),
        ("PUT", _, Some("/resize")) => qemu::resize(inner, ctx),
        ("GET", _, Some("/status/current")) => power::current(inner, ctx),
        ("POST", _, Some("/status/start")) => power::power(inner, ctx, "start"),
        ("POST", _, Some("/status/stop")) => power::power(inner, ctx, "stop"),
        ("POST", _, Some("/status/shutdown")) => power::power(inner, ctx, "shutdown"),
        ("POST", _, Some("/agent/ping")) => power::ping(inner, ctx),
        ("GET", _, Some("/agent/network-get-interfaces")) => power::interfaces(inner, ctx),
        ("POST", _, Some("/agent/file-write")) => power::file_write(inner, ctx),
        ("POST", _, Some("/agent/exec")) => guest_exec::exec(inner, ctx),
        ("GET", _, Some("/agent/exec-status")) => guest_exec::exec_status(inner, ctx),
        _ => Err(ApiErr {
            status: 501,
            message: format!("Method '{method} {template}' not implemented in the simulator"),
            errors: None,
        }),
    }
}
