//! Cluster, node, storage, task and access handlers: `/version`, `/cluster/resources`,
//! `/cluster/nextid`, `/nodes`, node network and storage lists, storage content (synchronous
//! allocation with PVE's naming rules, deletion as a task), task status/log and
//! `/access/permissions`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::qemu::{HResult, check_node, parse_size};
use super::server::{ApiErr, Ctx, SimInner};
use super::state::{Power, SimStorage, Volume};

/// `GET /version`.
pub fn version(inner: &SimInner) -> HResult {
    let release = inner
        .config
        .version
        .rsplit_once('.')
        .map_or(inner.config.version.as_str(), |(a, _)| a);
    Ok((
        json!({"version": inner.config.version, "release": release, "repoid": "0123abcd"}),
        None,
    ))
}

/// `GET /cluster/resources`.
pub fn resources(inner: &SimInner, ctx: &Ctx) -> HResult {
    let ty = ctx.get("type");
    let mut out = Vec::new();
    let online: Vec<(String, bool)> = inner
        .config
        .nodes
        .iter()
        .map(|n| (n.name.clone(), inner.node_online(&n.name)))
        .collect();
    let is_online = |node: &str| online.iter().any(|(n, on)| n == node && *on);
    let st = inner.state();
    if ty.is_none_or(|t| t == "vm") {
        for (id, vm) in st
            .vms
            .iter()
            .filter(|(id, _)| !inner.config.invisible_vms.contains(id))
        {
            let status = match (vm.config.get("lock"), vm.power) {
                _ if !is_online(&vm.node) => "unknown",
                (Some(l), _) if l == "clone" => "unknown",
                (_, Power::Stopped) => "stopped",
                _ => "running",
            };
            let mut v = json!({
                "id": format!("qemu/{id}"), "type": "qemu", "vmid": id, "node": vm.node, "status": status,
                "name": vm.config.get("name"), "template": u8::from(vm.is_template()), "maxmem": 2u64 << 30, "mem": 0,
            });
            if let Some(t) = vm.config.get("tags") {
                v["tags"] = json!(t);
            }
            if let Some(l) = vm.config.get("lock") {
                v["lock"] = json!(l);
            }
            out.push(v);
        }
    }
    if ty.is_none_or(|t| t == "node") {
        for n in &inner.config.nodes {
            out.push(json!({
                "id": format!("node/{}", n.name), "type": "node", "node": n.name,
                "status": if is_online(&n.name) { "online" } else { "offline" }, "maxmem": n.maxmem, "mem": node_mem(&st, n), "maxcpu": 16,
            }));
        }
    }
    if ty.is_none_or(|t| t == "storage") {
        for n in &inner.config.nodes {
            for s in &inner.config.storages {
                let used = used_bytes(&st.volumes, s);
                out.push(json!({
                    "id": format!("storage/{}/{}", n.name, s.id), "type": "storage", "storage": s.id, "node": n.name,
                    "content": s.content.join(","), "shared": u8::from(s.shared), "maxdisk": s.total, "disk": used,
                    "status": if is_online(&n.name) { "available" } else { "unknown" }, "plugintype": s.kind,
                }));
            }
        }
    }
    Ok((Value::Array(out), None))
}

/// A node's used memory: its base load plus the memory of the VMs running on it.
fn node_mem(st: &super::state::State, n: &super::state::SimNode) -> u64 {
    let vms: u64 = st
        .vms
        .values()
        .filter(|vm| vm.node == n.name && vm.power != Power::Stopped)
        .filter_map(|vm| {
            let m = vm.config.get("memory")?;
            let mib = m.split(',').find_map(|p| {
                let v = p.strip_prefix("current=").unwrap_or(p);
                v.parse::<u64>().ok()
            })?;
            Some(mib << 20)
        })
        .sum();
    n.mem.saturating_add(vms).min(n.maxmem)
}

fn used_bytes(volumes: &std::collections::BTreeMap<String, Volume>, s: &SimStorage) -> u64 {
    volumes
        .iter()
        .filter(|(id, _)| id.split(':').next() == Some(s.id.as_str()))
        .map(|(_, v)| v.size)
        .sum()
}

/// `GET /cluster/nextid`: a string, as PVE sends it.
pub fn nextid(inner: &SimInner, ctx: &Ctx) -> HResult {
    let st = inner.state();
    if let Some(id) = ctx.get("vmid") {
        let n: u32 = id.parse().unwrap_or_default();
        if st.vms.contains_key(&n) {
            return Err(ApiErr::param("vmid", format!("VM {n} already exists")));
        }
        return Ok((json!(id), None));
    }
    let free = (100u32..1_000_000)
        .find(|n| !st.vms.contains_key(n))
        .unwrap_or(100);
    Ok((json!(free.to_string()), None))
}

/// `GET /nodes`.
pub fn nodes(inner: &SimInner) -> HResult {
    let online: Vec<bool> = inner
        .config
        .nodes
        .iter()
        .map(|n| inner.node_online(&n.name))
        .collect();
    let st = inner.state();
    let list: Vec<Value> = inner
        .config
        .nodes
        .iter()
        .zip(online)
        .map(|(n, on)| json!({"node": n.name, "status": if on { "online" } else { "offline" }, "maxmem": n.maxmem, "mem": node_mem(&st, n)}))
        .collect();
    Ok((Value::Array(list), None))
}

/// `GET /nodes/{node}/network`.
pub fn network(inner: &SimInner, ctx: &Ctx) -> HResult {
    check_node(inner, ctx.req("node"))?;
    let mut list: Vec<Value> = inner
        .config
        .bridges
        .iter()
        .map(|b| json!({"iface": b, "type": "bridge", "active": 1}))
        .collect();
    if ctx.get("type").is_none() {
        list.push(json!({"iface": "eno1", "type": "eth", "active": 1}));
    }
    Ok((Value::Array(list), None))
}

fn storage<'a>(inner: &'a SimInner, id: &str) -> Result<&'a SimStorage, ApiErr> {
    inner
        .config
        .storages
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiErr::internal(format!("storage '{id}' does not exist")))
}

/// `GET /nodes/{node}/storage`.
pub fn storage_list(inner: &SimInner, ctx: &Ctx) -> HResult {
    check_node(inner, ctx.req("node"))?;
    let st = inner.state();
    let wanted: Vec<&str> = ctx
        .get("content")
        .map(|c| c.split(',').collect())
        .unwrap_or_default();
    let list: Vec<Value> = inner
        .config
        .storages
        .iter()
        .filter(|s| wanted.iter().all(|w| s.content.iter().any(|c| c == w)))
        .filter(|s| ctx.get("storage").is_none_or(|id| id == s.id))
        .map(|s| {
            let used = used_bytes(&st.volumes, s);
            json!({"storage": s.id, "type": s.kind, "content": s.content.join(","), "shared": u8::from(s.shared),
                   "active": 1, "enabled": 1, "total": s.total, "used": used, "avail": s.total.saturating_sub(used)})
        })
        .collect();
    Ok((Value::Array(list), None))
}

fn full_volid(storage: &str, volume: &str) -> String {
    if volume.contains(':') {
        volume.to_owned()
    } else {
        format!("{storage}:{volume}")
    }
}

/// `POST /nodes/{node}/storage/{storage}/content`: synchronous allocation, returns the volid.
pub fn alloc(inner: &SimInner, ctx: &Ctx) -> HResult {
    let node = ctx.req("node");
    check_node(inner, node)?;
    let s = storage(inner, ctx.req("storage"))?;
    if !s.content.iter().any(|c| c == "images") {
        return Err(ApiErr::internal(format!(
            "storage '{}' does not support vm images",
            s.id
        )));
    }
    let (vmid, name) = (ctx.req("vmid"), ctx.req("filename"));
    if !name.starts_with(&format!("vm-{vmid}-")) {
        return Err(ApiErr::internal(format!(
            "illegal name '{name}' - should be 'vm-{vmid}-*'"
        )));
    }
    let volid = if s.is_file_based() {
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
        if !matches!(ext, "raw" | "qcow2" | "vmdk") {
            return Err(ApiErr::internal(format!(
                "illegal name '{name}' - wrong extension"
            )));
        }
        format!("{}:{vmid}/{name}", s.id)
    } else {
        format!("{}:{name}", s.id)
    };
    let size = parse_size(ctx.req("size"), 1 << 10).unwrap_or(0);
    let mut st = inner.state();
    if st.volumes.contains_key(&volid) {
        return Err(ApiErr::internal(format!(
            "disk image '{volid}' already exists"
        )));
    }
    if used_bytes(&st.volumes, s) + size > s.total {
        return Err(ApiErr::internal(format!(
            "not enough free space on storage '{}'",
            s.id
        )));
    }
    let owner = vmid.parse().unwrap_or_default();
    st.volumes.insert(
        volid.clone(),
        Volume {
            owner,
            size,
            node: node.to_owned(),
        },
    );
    Ok((json!(volid), None))
}

/// `GET /nodes/{node}/storage/{storage}/content`.
pub fn content(inner: &SimInner, ctx: &Ctx) -> HResult {
    check_node(inner, ctx.req("node"))?;
    let s = storage(inner, ctx.req("storage"))?;
    let st = inner.state();
    let prefix = format!("{}:", s.id);
    let node_suffix = format!("@{}", ctx.req("node"));
    let list: Vec<Value> = st
        .volumes
        .iter()
        .filter(|(id, _)| id.starts_with(&prefix))
        .filter(|(_, v)| ctx.get("vmid").is_none_or(|id| id == v.owner.to_string()))
        // Uploaded files on local storages are per node (`<volid>@<node>`, see images.rs).
        .filter_map(|(id, v)| match id.split_once('@') {
            Some((volid, _)) if id.ends_with(&node_suffix) => Some((volid, v)),
            Some(_) => None,
            None => Some((id.as_str(), v)),
        })
        .map(|(id, v)| {
            let (content, format) = match id.split_once(":import/") {
                Some((_, name)) => ("import", name.rsplit('.').next().unwrap_or("raw")),
                None => ("images", "raw"),
            };
            json!({"volid": id, "format": format, "size": v.size, "vmid": v.owner, "content": content})
        })
        .filter(|v| ctx.get("content").is_none_or(|c| v["content"] == c))
        .collect();
    Ok((Value::Array(list), None))
}

/// `GET /nodes/{node}/storage/{storage}/content/{volume}`.
pub fn volume_info(inner: &SimInner, ctx: &Ctx) -> HResult {
    let volid = full_volid(ctx.req("storage"), ctx.req("volume"));
    let st = inner.state();
    let v = st
        .volumes
        .get(&volid)
        .ok_or_else(|| ApiErr::internal(format!("volume '{volid}' does not exist")))?;
    Ok((
        json!({"format": "raw", "size": v.size, "used": v.size, "path": format!("/dev/sim/{}/{volid}", v.node)}),
        None,
    ))
}

/// `DELETE /nodes/{node}/storage/{storage}/content/{volume}` (a task).
pub fn delete_volume(inner: &Arc<SimInner>, ctx: &Ctx) -> HResult {
    let node = ctx.req("node");
    check_node(inner, node)?;
    let storage = ctx
        .get("storage")
        .unwrap_or_else(|| ctx.req("volume").split(':').next().unwrap_or_default());
    let volid = full_volid(storage, ctx.req("volume"));
    let owner = {
        let st = inner.state();
        st.volumes
            .get(&volid)
            .map(|v| v.owner)
            .ok_or_else(|| ApiErr::internal(format!("volume '{volid}' does not exist")))?
    };
    let sim = Arc::clone(inner);
    let key = volid.clone();
    let work = async move {
        sim.state().volumes.remove(&key);
        Ok(())
    };
    let id = format!("{owner}@{storage}");
    let upid = inner.spawn_task(node, "imgdel", &id, ctx.task_fault.clone(), work);
    Ok((json!(upid), None))
}

/// `GET /nodes/{node}/tasks/{upid}/status|log`.
pub fn task(inner: &SimInner, ctx: &Ctx, log: bool) -> HResult {
    let (node, upid) = (ctx.req("node"), ctx.req("upid"));
    if log {
        let start = ctx.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
        let limit = ctx.get("limit").and_then(|s| s.parse().ok()).unwrap_or(50);
        let (lines, total) = inner.task_log(node, upid, start, limit)?;
        return Ok((lines, Some(total)));
    }
    Ok((inner.task_status(node, upid)?, None))
}

/// `GET /access/permissions`.
pub fn permissions(inner: &SimInner) -> HResult {
    Ok((json!(inner.config.permissions), None))
}
