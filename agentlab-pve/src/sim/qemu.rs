//! QEMU VM handlers: clone (linked/full, `target`, locks), config get/set (with PVE's
//! detach/`unusedN` rules and tag normalisation), resize and destroy.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::server::{ApiErr, Ctx, SimInner};
use super::state::{Power, State, Vm, Volume, random_mac, referenced_volumes, volume_owner};

/// Handler result: data and optional `total`.
pub type HResult = Result<(Value, Option<usize>), ApiErr>;

const META_KEYS: [&str; 8] = ["node", "vmid", "delete", "digest", "skiplock", "background_delay", "revert", "force"];

/// The error PVE gives for a VM missing on a node.
pub fn no_conf(node: &str, vmid: &str) -> ApiErr {
    ApiErr::internal(format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"))
}

/// The VM `vmid` on `node`, or PVE's error.
pub fn vm_mut<'a>(st: &'a mut State, node: &str, vmid: &str) -> Result<&'a mut Vm, ApiErr> {
    let id: u32 = vmid.parse().unwrap_or_default();
    st.vms.get_mut(&id).filter(|vm| vm.node == node).ok_or_else(|| no_conf(node, vmid))
}

/// Fails if the node is unknown.
pub fn check_node(inner: &SimInner, node: &str) -> Result<(), ApiErr> {
    if inner.config.nodes.iter().any(|n| n.name == node) {
        Ok(())
    } else {
        Err(ApiErr::internal(format!("hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known")))
    }
}

fn check_unlocked(vm: &Vm) -> Result<(), ApiErr> {
    match vm.config.get("lock") {
        Some(l) => Err(ApiErr::internal(format!("VM is locked ({l})"))),
        None => Ok(()),
    }
}

/// `POST /nodes/{node}/qemu/{vmid}/clone`.
pub fn clone(inner: &Arc<SimInner>, ctx: &Ctx) -> HResult {
    let (node, vmid) = (ctx.req("node"), ctx.req("vmid"));
    check_node(inner, node)?;
    let newid: u32 = ctx.req("newid").parse().unwrap_or_default();
    let target = ctx.get("target").unwrap_or(node).to_owned();
    check_node(inner, &target)?;
    let mut st = inner.state();
    let src = vm_mut(&mut st, node, vmid)?.clone();
    if src.is_template() && src.power == Power::Running {
        return Err(ApiErr::internal("VM is running"));
    }
    check_unlocked(&src)?;
    let full = ctx.flag("full").unwrap_or(!src.is_template());
    if !full && !src.is_template() {
        return Err(ApiErr::internal("Linked clone feature is only available for templates"));
    }
    if !full && (ctx.get("storage").is_some() || ctx.get("format").is_some()) {
        return Err(ApiErr::internal("parameter 'storage' not allowed for linked clones"));
    }
    if let Some(s) = ctx.get("storage") {
        let ok = inner.config.storages.iter().any(|st| st.id == s && st.content.iter().any(|c| c == "images"));
        if !ok {
            return Err(ApiErr::internal(format!("storage '{s}' does not support vm images")));
        }
    }
    let disks = referenced_volumes(&src.config);
    if target != node {
        for (_, volid) in &disks {
            let store = volid.split(':').next().unwrap_or_default();
            let shared = ctx.get("storage").map_or(store, |s| s);
            if !inner.config.storages.iter().any(|s| s.id == shared && s.shared) {
                return Err(ApiErr::internal(format!("can't clone VM to node '{target}' (VM uses local storage)")));
            }
        }
    }
    if st.vms.get(&newid).is_some_and(|existing| existing.node == node) {
        return Err(ApiErr::internal(format!("unable to create VM {newid}: config file already exists")));
    }
    let mut config = BTreeMap::from([("lock".to_owned(), "clone".to_owned())]);
    st.vms.entry(newid).or_insert_with(|| Vm {
        node: node.to_owned(),
        config: config.clone(),
        power: Power::Stopped,
        agent_ready_at: None,
        files: BTreeMap::new(),
    });
    drop(st);
    for (k, v) in &src.config {
        if !(k.starts_with("unused") || k == "template" || k == "lock" || k == "name" || k == "description") {
            config.insert(k.clone(), v.clone());
        }
    }
    let name = ctx.get("name").map_or_else(|| format!("Copy-of-VM-{}", src.config.get("name").cloned().unwrap_or_default()), str::to_owned);
    config.insert("name".into(), name);
    if let Some(d) = ctx.get("description") {
        config.insert("description".into(), d.to_owned());
    }
    let storage_param = ctx.get("storage").map(str::to_owned);
    let (sim, node, src_id) = (Arc::clone(inner), node.to_owned(), vmid.to_owned());
    let work = async move {
        let lock_store = storage_param.clone().or_else(|| disks.first().map(|(_, v)| v.split(':').next().unwrap_or_default().to_owned()));
        let guard_lock = lock_store.as_ref().map(|s| sim.storage_lock(s));
        let _guard = match &guard_lock {
            Some(l) => match tokio::time::timeout(sim.config.lock_timeout, l.lock()).await {
                Ok(g) => Some(g),
                Err(_) => {
                    let store = lock_store.unwrap_or_default();
                    let shared = sim.config.storages.iter().any(|s| s.id == store && s.shared);
                    let msg = if shared {
                        format!("cfs-lock 'storage-{store}' error: got lock request timeout")
                    } else {
                        format!("can't lock file '/var/lock/pve-manager/pve-storage-{store}' - got timeout")
                    };
                    return fail_clone(&sim, newid, &node, &msg);
                }
            },
            None => None,
        };
        tokio::time::sleep(sim.config.clone_duration).await;
        let mut st = sim.state();
        if st.vms.get(&newid).is_some_and(|vm| vm.node != node || vm.config.get("lock").is_none_or(|l| l != "clone")) {
            drop(st);
            return Err(format!("clone failed: unable to create VM {newid}: config file already exists"));
        }
        for (key, volid) in &disks {
            let (store, vname) = volid.split_once(':').unwrap_or_default();
            let store = storage_param.as_deref().unwrap_or(store);
            let is_ci = vname.contains("cloudinit");
            let new_name = if is_ci { format!("vm-{newid}-cloudinit") } else { format!("vm-{newid}-disk-{}", key.trim_start_matches(|c: char| !c.is_ascii_digit())) };
            let new_volid = if full || is_ci { format!("{store}:{new_name}") } else { format!("{store}:{vname}/{new_name}") };
            let size = st.volumes.get(volid).map_or(8 << 30, |v| v.size);
            st.volumes.insert(new_volid.clone(), Volume { owner: newid, size, node: target.clone() });
            let rest = config.get(key).and_then(|v| v.split_once(',')).map(|(_, r)| format!(",{r}")).unwrap_or_default();
            config.insert(key.clone(), format!("{new_volid}{rest}"));
        }
        for (k, v) in config.iter_mut().filter(|(k, _)| k.starts_with("net")) {
            let rest: Vec<&str> = v.split(',').filter(|p| p.starts_with("bridge=") || p.starts_with("firewall=") || p.starts_with("tag=")).collect();
            let model = v.split(',').next().and_then(|p| p.split('=').next()).unwrap_or("virtio").to_owned();
            let _ = k;
            *v = std::iter::once(format!("{model}={}", random_mac())).chain(rest.into_iter().map(str::to_owned)).collect::<Vec<_>>().join(",");
        }
        config.remove("lock");
        st.vms.insert(newid, Vm { node: target.clone(), config, power: Power::Stopped, agent_ready_at: None, files: BTreeMap::new() });
        Ok(())
    };
    let fault = ctx.task_fault.clone();
    let upid = inner.spawn_task(ctx.req("node"), "qmclone", &src_id, fault.clone(), work);
    if fault.is_some() {
        let mut st = inner.state();
        if st.vms.get(&newid).is_some_and(|vm| vm.config.get("lock").is_some_and(|l| l == "clone")) {
            st.vms.remove(&newid);
        }
    }
    Ok((json!(upid), None))
}

fn fail_clone(sim: &SimInner, newid: u32, node: &str, msg: &str) -> Result<(), String> {
    let mut st = sim.state();
    if st.vms.get(&newid).is_some_and(|vm| vm.node == node && vm.config.get("lock").is_some_and(|l| l == "clone")) {
        st.vms.remove(&newid);
    }
    Err(format!("clone failed: {msg}"))
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
    check_unlocked(vm)?;
    let mut config = vm.config.clone();
    for (k, v) in ctx.params.iter().filter(|(k, _)| !META_KEYS.contains(&k.as_str())) {
        for key in ["lock", "args", "hookscript"] {
            if k == key {
                return Err(ApiErr::internal(format!("only root can set '{key}' config")));
            }
        }
        let value = if k == "tags" { normalize_tags(v) } else { v.clone() };
        config.insert(k.clone(), value);
    }
    let mut to_free = Vec::new();
    for key in ctx.get("delete").unwrap_or_default().split([',', ';', ' ']).filter(|s| !s.is_empty()) {
        let Some(old) = config.remove(key) else { continue };
        let Some((_, volid)) = referenced_volumes(&BTreeMap::from([(key.to_owned(), old)])).pop() else { continue };
        if volume_owner(&volid) != Some(id) || volid.contains("cloudinit") {
            continue;
        }
        if key.starts_with("unused") {
            to_free.push(volid);
        } else {
            let n = (0..).find(|n| !config.contains_key(&format!("unused{n}"))).unwrap_or(0);
            config.insert(format!("unused{n}"), volid);
        }
    }
    for (key, volid) in referenced_volumes(&config) {
        if !(st.volumes.contains_key(&volid) || key.starts_with("ide") && volid.contains("cloudinit")) {
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
        let upid = inner.spawn_task(node, "qmconfig", vmid, ctx.task_fault.clone(), async { Ok(()) });
        return Ok((json!(upid), None));
    }
    Ok((Value::Null, None))
}

fn normalize_tags(v: &str) -> String {
    let mut tags: Vec<String> = v.split([',', ';', ' ']).filter(|s| !s.is_empty()).map(str::to_lowercase).collect();
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
    let (node, vmid, disk, size) = (ctx.req("node"), ctx.req("vmid"), ctx.req("disk").to_owned(), ctx.req("size").to_owned());
    {
        let mut st = inner.state();
        let vm = vm_mut(&mut st, node, vmid)?;
        check_unlocked(vm)?;
        if !vm.config.contains_key(&disk) {
            return Err(ApiErr::internal(format!("disk '{disk}' does not exist")));
        }
    }
    let (sim, node_s, id) = (Arc::clone(inner), node.to_owned(), vmid.parse::<u32>().unwrap_or_default());
    let work = async move {
        let mut st = sim.state();
        let vm = st.vms.get_mut(&id).filter(|vm| vm.node == node_s).ok_or("VM vanished")?;
        let value = vm.config.get(&disk).cloned().unwrap_or_default();
        let current = value.split(',').find_map(|p| p.strip_prefix("size=")).and_then(|s| parse_size(s, 1)).unwrap_or(0);
        let new = match size.strip_prefix('+') {
            Some(add) => current + parse_size(add, 1).unwrap_or(0),
            None => parse_size(&size, 1).unwrap_or(0),
        };
        if new < current {
            return Err("shrinking disks is not supported".to_owned());
        }
        let gib = new.div_ceil(1 << 30);
        let mut parts: Vec<String> = value.split(',').filter(|p| !p.starts_with("size=")).map(str::to_owned).collect();
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
        check_unlocked(vm)?;
        if vm.power != Power::Stopped {
            return Err(ApiErr::internal(format!("VM {vmid} is running - destroy failed")));
        }
    }
    let unreferenced = ctx.flag("destroy-unreferenced-disks").unwrap_or(false);
    let sim = Arc::clone(inner);
    let work = async move {
        let mut st = sim.state();
        let Some(vm) = st.vms.get(&id) else { return Err(format!("VM {id} vanished")) };
        for (_, volid) in referenced_volumes(&vm.config) {
            if volume_owner(&volid) == Some(id) {
                st.volumes.remove(&volid);
            }
        }
        if unreferenced {
            st.volumes.retain(|volid, v| !(v.owner == id && volume_owner(volid) == Some(id)));
        }
        st.vms.remove(&id);
        Ok(())
    };
    let upid = inner.spawn_task(node, "qmdestroy", vmid, ctx.task_fault.clone(), work);
    Ok((json!(upid), None))
}
