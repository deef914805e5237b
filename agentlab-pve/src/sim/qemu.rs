//! QEMU VM handlers: clone (linked/full, `target`, locks), config get/set (with PVE's
//! detach/`unusedN` rules and tag normalisation), resize and destroy.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::server::{ApiErr, Ctx, SimInner};
use super::state::{Power, State, Vm, referenced_volumes, volume_owner};

/// Handler result: data and optional `total`.
pub type HResult = Result<(Value, Option<usize>), ApiErr>;

const META_KEYS: [&str; 8] = [
    "node",
    "vmid",
    "delete",
    "digest",
    "skiplock",
    "background_delay",
    "revert",
    "force",
];

/// The error PVE gives for a VM missing on a node.
pub fn no_conf(node: &str, vmid: &str) -> ApiErr {
    ApiErr::internal(format!(
        "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    ))
}

/// The VM `vmid` on `node`, or PVE's error.
pub fn vm_mut<'a>(st: &'a mut State, node: &str, vmid: &str) -> Result<&'a mut Vm, ApiErr> {
    let id: u32 = vmid.parse().unwrap_or_default();
    st.vms
        .get_mut(&id)
        .filter(|vm| vm.node == node)
        .ok_or_else(|| no_conf(node, vmid))
}

/// Fails if the node is unknown.
pub fn check_node(inner: &SimInner, node: &str) -> Result<(), ApiErr> {
    if inner.config.nodes.iter().any(|n| n.name == node) {
        Ok(())
    } else {
        Err(ApiErr::internal(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
        )))
    }
}

pub(super) fn check_unlocked(vm: &Vm) -> Result<(), ApiErr> {
    match vm.config.get("lock") {
        Some(l) => Err(ApiErr::internal(format!("VM is locked ({l})"))),
        None => Ok(()),
    }
}

/// Like [`check_unlocked`], and fails like PVE's flock when clones hold the config lock.
pub(super) fn check_exclusive(vm: &Vm, vmid: &str) -> Result<(), ApiErr> {
    check_unlocked(vm)?;
    if vm.clone_readers > 0 {
        return Err(ApiErr::internal(format!(
            "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"
        )));
    }
    Ok(())
}

/// `GET /nodes/{node}/qemu/{vmid}/config`.
pub fn get_config(inner: &SimInner, ctx: &Ctx) -> HResult {
    let mut st = inner.state();
    let vm = vm_mut(&mut st, ctx.req("node"), ctx.req("vmid"))?;
    let mut v = json!(vm.config);
    v["digest"] = json!(format!("{:040x}", vm.config.len()));
    for k in ["template", "agent", "cores", "memory", "balloon"] {
        if let Some(n) = vm.config.get(k).and_then(|s| s.parse::<i64>().ok()) {
            v[k] = json!(n);
        }
    }
    Ok((v, None))
}

/// `PUT`/`POST /nodes/{node}/qemu/{vmid}/config`.
pub fn set_config(inner: &Arc<SimInner>, ctx: &Ctx, async_: bool) -> HResult {
    let (node, vmid) = (ctx.req("node"), ctx.req("vmid"));
    let id: u32 = vmid.parse().unwrap_or_default();
    let mut st = inner.state();
    let vm = vm_mut(&mut st, node, vmid)?;
    check_exclusive(vm, vmid)?;
    let mut config = vm.config.clone();
    for (k, v) in ctx
        .params
        .iter()
        .filter(|(k, _)| !META_KEYS.contains(&k.as_str()))
    {
        for key in ["lock", "args", "hookscript"] {
            if k == key {
                return Err(ApiErr::internal(format!(
                    "only root can set '{key}' config"
                )));
            }
        }
        let value = if k == "tags" {
            normalize_tags(v)
        } else {
            v.clone()
        };
        config.insert(k.clone(), value);
    }
    let mut to_free = Vec::new();
    for key in ctx
        .get("delete")
        .unwrap_or_default()
        .split([',', ';', ' '])
        .filter(|s| !s.is_empty())
    {
        let Some(old) = config.remove(key) else {
            continue;
        };
        let Some((_, volid)) = referenced_volumes(&BTreeMap::from([(key.to_owned(), old)])).pop()
        else {
            continue;
        };
        if volume_owner(&volid) != Some(id) || volid.contains("cloudinit") {
            continue;
        }
        if key.starts_with("unused") {
            to_free.push(volid);
        } else {
            let n = (0..)
                .find(|n| !config.contains_key(&format!("unused{n}")))
                .unwrap_or(0);
            config.insert(format!("unused{n}"), volid);
        }
    }
    for (key, volid) in referenced_volumes(&config) {
        if !(st.volumes.contains_key(&volid)
            || key.starts_with("ide") && volid.contains("cloudinit"))
        {
            return Err(ApiErr::internal(format!("volume '{volid}' does not exist")));
        }
    }
    for volid in to_free {
        st.volumes.remove(&volid);
    }
    if let Some(vm) = st.vms.get_mut(&id) {
        vm.config = config;
    }
    drop(st);
    if async_ {
        let upid = inner.spawn_task(node, "qmconfig", vmid, ctx.task_fault.clone(), async {
            Ok(())
        });
        return Ok((json!(upid), None));
    }
    Ok((Value::Null, None))
}

fn normalize_tags(v: &str) -> String {
    let mut tags: Vec<String> = v
        .split([',', ';', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
        .collect();
    tags.sort();
    tags.dedup();
    tags.join(";")
}

/// Parses a PVE size (`8G`, `512M`, `100K`, bytes without suffix).
pub fn parse_size(s: &str, default_unit: u64) -> Option<u64> {
    let (num, unit) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, default_unit),
    };
    let n: f64 = num.parse().ok()?;
    Some((n * unit as f64) as u64)
}

/// `PUT /nodes/{node}/qemu/{vmid}/resize`.
pub fn resize(inner: &Arc<SimInner>, ctx: &Ctx) -> HResult {
    let (node, vmid, disk, size) = (
        ctx.req("node"),
        ctx.req("vmid"),
        ctx.req("disk").to_owned(),
        ctx.req("size").to_owned(),
    );
    {
        let mut st = inner.state();
        let vm = vm_mut(&mut st, node, vmid)?;
        check_exclusive(vm, vmid)?;
        if !vm.config.contains_key(&disk) {
            return Err(ApiErr::internal(format!("disk '{disk}' does not exist")));
        }
    }
    let (sim, node_s, id) = (
        Arc::clone(inner),
        node.to_owned(),
        vmid.parse::<u32>().unwrap_or_default(),
    );
    let work = async move {
        let mut st = sim.state();
        let vm = st
            .vms
            .get_mut(&id)
            .filter(|vm| vm.node == node_s)
            .ok_or("VM vanished")?;
        let value = vm.config.get(&disk).cloned().unwrap_or_default();
        let current = value
            .split(',')
            .find_map(|p| p.strip_prefix("size="))
            .and_then(|s| parse_size(s, 1))
            .unwrap_or(0);
        let new = match size.strip_prefix('+') {
            Some(add) => current + parse_size(add, 1).unwrap_or(0),
            None => parse_size(&size, 1).unwrap_or(0),
        };
        if new < current {
            return Err("shrinking disks is not supported".to_owned());
        }
        let gib = new.div_ceil(1 << 30);
        let mut parts: Vec<String> = value
            .split(',')
            .filter(|p| !p.starts_with("size="))
            .map(str::to_owned)
            .collect();
        parts.push(format!("size={gib}G"));
        vm.config.insert(disk, parts.join(","));
        Ok(())
    };
    let upid = inner.spawn_task(node, "resize", vmid, ctx.task_fault.clone(), work);
    Ok((json!(upid), None))
}

/// `DELETE /nodes/{node}/qemu/{vmid}`.
pub fn destroy(inner: &Arc<SimInner>, ctx: &Ctx) -> HResult {
    let (node, vmid) = (ctx.req("node"), ctx.req("vmid"));
    let id: u32 = vmid.parse().unwrap_or_default();
    {
        let mut st = inner.state();
        let vm = vm_mut(&mut st, node, vmid)?;
        check_exclusive(vm, vmid)?;
        if vm.power != Power::Stopped {
            return Err(ApiErr::internal(format!(
                "VM {vmid} is running - destroy failed"
            )));
        }
    }
    let unreferenced = ctx.flag("destroy-unreferenced-disks").unwrap_or(false);
    let sim = Arc::clone(inner);
    let work = async move {
        let mut st = sim.state();
        let Some(vm) = st.vms.get(&id) else {
            return Err(format!("VM {id} vanished"));
        };
        for (_, volid) in referenced_volumes(&vm.config) {
            if volume_owner(&volid) == Some(id) {
                st.volumes.remove(&volid);
            }
        }
        if unreferenced {
            st.volumes
                .retain(|volid, v| !(v.owner == id && volume_owner(volid) == Some(id)));
        }
        st.vms.remove(&id);
        Ok(())
    };
    let upid = inner.spawn_task(node, "qmdestroy", vmid, ctx.task_fault.clone(), work);
    Ok((json!(upid), None))
}
