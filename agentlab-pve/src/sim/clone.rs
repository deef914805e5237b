//! `POST /nodes/{node}/qemu/{vmid}/clone`: linked/full clones with PVE's synchronous checks,
//! the `lock: clone` placeholder on the new id, the storage lock (waited for up to
//! `lock_timeout`, then `got timeout`), new MACs and disk names, and `target` node moves.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::qemu::{HResult, check_node, check_unlocked, vm_mut};
use super::server::{ApiErr, Ctx, SimInner};
use super::state::{Power, Vm, Volume, random_mac, referenced_volumes};

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
        return Err(ApiErr::internal(
            "Linked clone feature is only available for templates",
        ));
    }
    if !full && (ctx.get("storage").is_some() || ctx.get("format").is_some()) {
        return Err(ApiErr::internal(
            "parameter 'storage' not allowed for linked clones",
        ));
    }
    if let Some(s) = ctx.get("storage") {
        let ok = inner
            .config
            .storages
            .iter()
            .any(|st| st.id == s && st.content.iter().any(|c| c == "images"));
        if !ok {
            return Err(ApiErr::internal(format!(
                "storage '{s}' does not support vm images"
            )));
        }
    }
    let disks = referenced_volumes(&src.config);
    if target != node {
        for (_, volid) in &disks {
            let store = volid.split(':').next().unwrap_or_default();
            let shared = ctx.get("storage").map_or(store, |s| s);
            if !inner
                .config
                .storages
                .iter()
                .any(|s| s.id == shared && s.shared)
            {
                return Err(ApiErr::internal(format!(
                    "can't clone VM to node '{target}' (VM uses local storage)"
                )));
            }
        }
    }
    if st
        .vms
        .get(&newid)
        .is_some_and(|existing| existing.node == node)
    {
        return Err(ApiErr::internal(format!(
            "unable to create VM {newid}: config file already exists"
        )));
    }
    let mut config = BTreeMap::from([("lock".to_owned(), "clone".to_owned())]);
    st.vms.entry(newid).or_insert_with(|| Vm {
        node: node.to_owned(),
        config: config.clone(),
        power: Power::Stopped,
        agent_ready_at: None,
        files: BTreeMap::new(),
        clone_readers: 0,
    });
    let src_num: u32 = vmid.parse().unwrap_or_default();
    if let Some(v) = st.vms.get_mut(&src_num) {
        v.clone_readers += 1;
    }
    drop(st);
    let reader = SourceLock {
        sim: Arc::clone(inner),
        vmid: src_num,
    };
    for (k, v) in &src.config {
        if !(k.starts_with("unused")
            || k == "template"
            || k == "lock"
            || k == "name"
            || k == "description")
        {
            config.insert(k.clone(), v.clone());
        }
    }
    let name = ctx.get("name").map_or_else(
        || {
            format!(
                "Copy-of-VM-{}",
                src.config.get("name").cloned().unwrap_or_default()
            )
        },
        str::to_owned,
    );
    config.insert("name".into(), name);
    if let Some(d) = ctx.get("description") {
        config.insert("description".into(), d.to_owned());
    }
    let storage_param = ctx.get("storage").map(str::to_owned);
    let (sim, node, src_id) = (Arc::clone(inner), node.to_owned(), vmid.to_owned());
    let placeholder = Placeholder {
        sim: Arc::clone(inner),
        newid,
        node: node.to_owned(),
        armed: true,
    };
    let work = async move {
        let _reader = reader;
        let mut placeholder = placeholder;
        let lock_store = storage_param.clone().or_else(|| {
            disks
                .first()
                .map(|(_, v)| v.split(':').next().unwrap_or_default().to_owned())
        });
        let guard_lock = lock_store.as_ref().map(|s| sim.storage_lock(s));
        let _guard = match &guard_lock {
            Some(l) => match tokio::time::timeout(sim.config.lock_timeout, l.lock()).await {
                Ok(g) => Some(g),
                Err(_) => {
                    let store = lock_store.unwrap_or_default();
                    let shared = sim
                        .config
                        .storages
                        .iter()
                        .any(|s| s.id == store && s.shared);
                    let msg = if shared {
                        format!("cfs-lock 'storage-{store}' error: got lock request timeout")
                    } else {
                        format!(
                            "can't lock file '/var/lock/pve-manager/pve-storage-{store}' - got timeout"
                        )
                    };
                    return fail_clone(&sim, newid, &node, &msg);
                }
            },
            None => None,
        };
        tokio::time::sleep(sim.config.clone_duration).await;
        let mut st = sim.state();
        if st
            .vms
            .get(&newid)
            .is_some_and(|vm| vm.node != node || vm.config.get("lock").is_none_or(|l| l != "clone"))
        {
            drop(st);
            return Err(format!(
                "clone failed: unable to create VM {newid}: config file already exists"
            ));
        }
        for (key, volid) in &disks {
            let (store, vname) = volid.split_once(':').unwrap_or_default();
            let store = storage_param.as_deref().unwrap_or(store);
            let is_ci = vname.contains("cloudinit");
            let new_name = if is_ci {
                format!("vm-{newid}-cloudinit")
            } else {
                format!(
                    "vm-{newid}-disk-{}",
                    key.trim_start_matches(|c: char| !c.is_ascii_digit())
                )
            };
            let new_volid = if full || is_ci {
                format!("{store}:{new_name}")
            } else {
                format!("{store}:{vname}/{new_name}")
            };
            let size = st.volumes.get(volid).map_or(8 << 30, |v| v.size);
            st.volumes.insert(
                new_volid.clone(),
                Volume {
                    owner: newid,
                    size,
                    node: target.clone(),
                },
            );
            let rest = config
                .get(key)
                .and_then(|v| v.split_once(','))
                .map(|(_, r)| format!(",{r}"))
                .unwrap_or_default();
            config.insert(key.clone(), format!("{new_volid}{rest}"));
        }
        for (k, v) in config.iter_mut().filter(|(k, _)| k.starts_with("net")) {
            let rest: Vec<&str> = v
                .split(',')
                .filter(|p| {
                    p.starts_with("bridge=") || p.starts_with("firewall=") || p.starts_with("tag=")
                })
                .collect();
            let model = v
                .split(',')
                .next()
                .and_then(|p| p.split('=').next())
                .unwrap_or("virtio")
                .to_owned();
            let _ = k;
            *v = std::iter::once(format!("{model}={}", random_mac()))
                .chain(rest.into_iter().map(str::to_owned))
                .collect::<Vec<_>>()
                .join(",");
        }
        config.remove("lock");
        placeholder.armed = false;
        st.vms.insert(
            newid,
            Vm {
                node: target.clone(),
                config,
                power: Power::Stopped,
                agent_ready_at: None,
                files: BTreeMap::new(),
                clone_readers: 0,
            },
        );
        Ok(())
    };
    let fault = ctx.task_fault.clone();
    let upid = inner.spawn_task(ctx.req("node"), "qmclone", &src_id, fault.clone(), work);
    if fault.is_some() {
        let mut st = inner.state();
        if st
            .vms
            .get(&newid)
            .is_some_and(|vm| vm.config.get("lock").is_some_and(|l| l == "clone"))
        {
            st.vms.remove(&newid);
        }
    }
    Ok((json!(upid), None))
}

/// The `lock: clone` placeholder of the new VM: removed when the task ends without making
/// the VM (failure, or the task killed through `DELETE /nodes/{node}/tasks/{upid}`), as PVE
/// removes the config of a clone that failed.
struct Placeholder {
    sim: Arc<SimInner>,
    newid: u32,
    node: String,
    armed: bool,
}

impl Drop for Placeholder {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut st = self.sim.state();
        if st.vms.get(&self.newid).is_some_and(|vm| {
            vm.node == self.node && vm.config.get("lock").is_some_and(|l| l == "clone")
        }) {
            st.vms.remove(&self.newid);
        }
    }
}

/// The clone's shared lock on its source, released when the task ends (or is dropped).
struct SourceLock {
    sim: Arc<SimInner>,
    vmid: u32,
}

impl Drop for SourceLock {
    fn drop(&mut self) {
        if let Some(vm) = self.sim.state().vms.get_mut(&self.vmid) {
            vm.clone_readers = vm.clone_readers.saturating_sub(1);
        }
    }
}

fn fail_clone(sim: &SimInner, newid: u32, node: &str, msg: &str) -> Result<(), String> {
    let mut st = sim.state();
    if st
        .vms
        .get(&newid)
        .is_some_and(|vm| vm.node == node && vm.config.get("lock").is_some_and(|l| l == "clone"))
    {
        st.vms.remove(&newid);
    }
    Err(format!("clone failed: {msg}"))
}
