//! Destroy, listing, and workspace volumes.
//!
//! Workspace volumes are allocated owned by a reserved *holder* VM id (`volume_holder_vmid`,
//! never a real VM): PVE frees on VM destroy only volumes owned by that VM, and
//! `delete=scsi1` of a foreign-owned volume just unlinks it, so neither destroying a sandbox
//! nor detaching ever frees a workspace. Destroy additionally unlinks holder-owned disks first.

use std::time::Duration;

use agentlab_core::hypervisor::{HypervisorError, ManagedVm, PowerState, VolumeId};
use agentlab_core::ids::{Vmid, WorkspaceId};
use serde_json::Value;

use crate::client::{Params, seg};
use crate::error::PveError;
use crate::pve::ProxmoxHypervisor;

/// Config key used for the workspace disk.
pub const WORKSPACE_DISK: &str = "scsi1";

fn disk_keys_with(config: &Value, pred: impl Fn(&str) -> bool) -> Vec<String> {
    config
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
            base.len() < k.len() && matches!(base, "scsi" | "virtio" | "sata" | "ide" | "unused")
        })
        .filter_map(|(k, v)| {
            let file = v.as_str()?.split(',').next()?;
            pred(file).then(|| k.clone())
        })
        .collect()
}

impl ProxmoxHypervisor {
    async fn unlink(&self, node: &str, vmid: u32, keys: Vec<String>) -> Result<(), PveError> {
        if keys.is_empty() {
            return Ok(());
        }
        let path = format!("/nodes/{node}/qemu/{vmid}/config");
        let params: Params = vec![("delete", keys.join(","))];
        self.with_lock_retry(|| self.api.put(&path, &params))
            .await
            .map(|_| ())
    }

    fn holder_owned(&self, volid: &str) -> bool {
        let marker = format!("vm-{}-", self.opts.volume_holder_vmid);
        volid.split_once(':').is_some_and(|(_, name)| {
            name.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(&marker))
        })
    }

    pub(crate) async fn do_destroy(&self, vmid: u32) -> Result<(), HypervisorError> {
        self.settle_clone_task(vmid).await?;
        let mut node = self.vm_node(vmid).await?;
        let config = loop {
            match self.vm_config(&node, vmid).await {
                Err(e) if e.is_not_found() => match self.relocated(vmid, &node).await? {
                    Some(new) => node = new,
                    None => return Err(HypervisorError::NotFound(format!("VM {vmid}"))),
                },
                other => break other?,
            }
        };
        let config = if config.get("lock").and_then(Value::as_str) == Some("clone") {
            match self.wait_clone_lock(&node, vmid).await? {
                Some(c) => c,
                None => return Err(HypervisorError::NotFound(format!("VM {vmid}"))),
            }
        } else {
            config
        };
        if !self.is_ours(&config) {
            return Err(PveError::Refused(format!(
                "VM {vmid} does not carry the '{}' tag; AgentLab will not destroy it",
                self.opts.tag
            ))
            .into());
        }
        let keys = disk_keys_with(&config, |f| self.holder_owned(f));
        self.unlink(&node, vmid, keys).await?;
        if self.do_status(vmid).await? != PowerState::Stopped {
            let path = format!("/nodes/{node}/qemu/{vmid}/status/stop");
            let call = format!("POST {path}");
            self.with_lock_retry(|| async {
                let upid = self.api.post(&path, &Params::new()).await?;
                self.api.wait_task(&call, &upid, &self.opts.poll).await
            })
            .await?;
        }
        let path = format!("/nodes/{node}/qemu/{vmid}");
        let call = format!("DELETE {path}");
        let params: Params = vec![
            ("purge", "1".into()),
            ("destroy-unreferenced-disks", "1".into()),
        ];
        self.with_lock_retry(|| async {
            let upid = self.api.delete(&path, &params).await?;
            self.api.wait_task(&call, &upid, &self.opts.poll).await
        })
        .await?;
        self.forget_node(vmid);
        if let Some(dir) = self.opts.snippets_dir.clone() {
            let removed =
                tokio::task::spawn_blocking(move || crate::lifecycle::remove_snippets(&dir, vmid))
                    .await;
            if let Ok(Err(e)) = removed {
                tracing::warn!(sandbox = vmid, error = %e, "cannot remove bootstrap snippets");
            }
        }
        tracing::info!(sandbox = vmid, node = %node, "PVE VM destroyed");
        Ok(())
    }

    /// A VM locked by a clone task still running (e.g. started by a daemon that crashed):
    /// waits until the task ends, up to the task timeout. Returns the final config, or `None`
    /// when the clone failed and PVE removed the VM.
    async fn wait_clone_lock(&self, node: &str, vmid: u32) -> Result<Option<Value>, PveError> {
        let deadline =
            std::time::Instant::now() + Duration::from_millis(self.opts.poll.task_timeout_ms);
        let mut interval = Duration::from_millis(self.opts.poll.task_interval_ms.max(1));
        tracing::info!(
            sandbox = vmid,
            node,
            "VM is locked by a running clone; waiting for it"
        );
        loop {
            match self.vm_config(node, vmid).await {
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
                Ok(c) if c.get("lock").and_then(Value::as_str) != Some("clone") => {
                    return Ok(Some(c));
                }
                Ok(_) if std::time::Instant::now() > deadline => {
                    return Err(PveError::Timeout {
                        call: format!("GET /nodes/{node}/qemu/{vmid}/config"),
                        what: format!("the clone task creating VM {vmid} to finish"),
                    });
                }
                Ok(_) => {}
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_millis(
                self.opts.poll.task_max_interval_ms.max(1),
            ));
        }
    }

    pub(crate) async fn do_list_managed(&self) -> Result<Vec<ManagedVm>, HypervisorError> {
        let mut out = Vec::new();
        for vm in self.cluster_vms().await? {
            if vm.template
                || !vm
                    .tags
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&self.opts.tag))
            {
                continue;
            }
            let Ok(vmid) = Vmid::new(vm.vmid) else {
                continue;
            };
            self.remember_node(vm.vmid, &vm.node);
            let power = match vm.status.as_str() {
                "running" => PowerState::Running,
                "stopped" => PowerState::Stopped,
                _ => self.do_status(vm.vmid).await.unwrap_or(PowerState::Stopped),
            };
            out.push(ManagedVm {
                vmid,
                node: vm.node,
                power,
            });
        }
        Ok(out)
    }

    pub(crate) async fn do_used_ids(&self) -> Result<Vec<Vmid>, HypervisorError> {
        let mut ids: Vec<u32> = self.cluster_vms().await?.iter().map(|v| v.vmid).collect();
        ids.push(self.opts.volume_holder_vmid);
        ids.sort_unstable();
        ids.dedup();
        Ok(ids
            .into_iter()
            .filter_map(|id| Vmid::new(id).ok())
            .collect())
    }

    pub(crate) async fn do_create_volume(
        &self,
        ws: &WorkspaceId,
        size_gb: u32,
    ) -> Result<VolumeId, HypervisorError> {
        let node = self.pick_node(None).await?;
        let storage = &self.opts.storage;
        let list = self
            .api
            .get(
                &format!("/nodes/{node}/storage"),
                &vec![("storage", storage.clone())],
            )
            .await?;
        let kind = list
            .as_array()
            .and_then(|l| l.first())
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("lvmthin");
        let file_based = matches!(kind, "dir" | "nfs" | "cifs" | "glusterfs" | "btrfs");
        let holder = self.opts.volume_holder_vmid;
        let mut params: Params = vec![
            ("vmid", holder.to_string()),
            ("size", format!("{size_gb}G")),
        ];
        if file_based {
            params.push(("filename", format!("vm-{holder}-{ws}.qcow2")));
            params.push(("format", "qcow2".into()));
        } else {
            params.push(("filename", format!("vm-{holder}-{ws}")));
            params.push(("format", "raw".into()));
        }
        let volid = self
            .api
            .post(&format!("/nodes/{node}/storage/{storage}/content"), &params)
            .await?;
        let volid = volid
            .as_str()
            .ok_or_else(|| HypervisorError::backend("volume allocation returned no volid"))?;
        tracing::info!(workspace = %ws, volume = volid, "PVE workspace volume allocated");
        Ok(VolumeId(volid.to_owned()))
    }

    /// The AgentLab VM (by tag) whose config references `volid`, if any.
    async fn attached_to(&self, volid: &str) -> Result<Option<u32>, PveError> {
        for vm in self.cluster_vms().await? {
            if vm.template
                || !vm
                    .tags
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&self.opts.tag))
            {
                continue;
            }
            let config = match self.vm_config(&vm.node, vm.vmid).await {
                Err(e) if e.is_not_found() => continue,
                other => other?,
            };
            if !disk_keys_with(&config, |f| f == volid).is_empty() {
                return Ok(Some(vm.vmid));
            }
        }
        Ok(None)
    }

    pub(crate) async fn do_delete_volume(&self, volume: &VolumeId) -> Result<(), HypervisorError> {
        if let Some(owner) = self.attached_to(&volume.0).await? {
            return Err(HypervisorError::Conflict(format!(
                "volume {volume} is attached to VM {owner}; detach it first"
            )));
        }
        let node = self.pick_node(None).await?;
        let storage = volume.0.split(':').next().unwrap_or_default();
        let path = format!("/nodes/{node}/storage/{storage}/content/{}", seg(&volume.0));
        let call = format!(
            "DELETE /nodes/{node}/storage/{storage}/content/{}",
            volume.0
        );
        let result = self
            .with_lock_retry(|| async {
                let upid = self.api.delete(&path, &Params::new()).await?;
                self.api.wait_task(&call, &upid, &self.opts.poll).await
            })
            .await;
        match result {
            Err(e) if e.is_not_found() => {
                Err(HypervisorError::NotFound(format!("volume {volume}")))
            }
            other => Ok(other?),
        }
    }

    pub(crate) async fn do_attach_volume(
        &self,
        vmid: u32,
        volume: &VolumeId,
    ) -> Result<(), HypervisorError> {
        let node = self.vm_node(vmid).await?;
        if let Some(owner) = self.attached_to(&volume.0).await? {
            return Err(HypervisorError::Conflict(format!(
                "volume {volume} is already attached to VM {owner}"
            )));
        }
        let config = self.vm_config(&node, vmid).await?;
        if let Some(current) = config.get(WORKSPACE_DISK).and_then(Value::as_str) {
            return Err(HypervisorError::Conflict(format!(
                "VM {vmid} already has {WORKSPACE_DISK} = {current}"
            )));
        }
        let path = format!("/nodes/{node}/qemu/{vmid}/config");
        let params: Params = vec![(WORKSPACE_DISK, format!("{},backup=0,discard=on", volume.0))];
        self.with_lock_retry(|| self.api.put(&path, &params))
            .await?;
        Ok(())
    }

    pub(crate) async fn do_detach_volume(
        &self,
        vmid: u32,
        volume: &VolumeId,
    ) -> Result<(), HypervisorError> {
        let node = self.vm_node(vmid).await?;
        let config = self.vm_config(&node, vmid).await?;
        let keys = disk_keys_with(&config, |f| f == volume.0);
        self.unlink(&node, vmid, keys).await?;
        // A foreign-owned volume is simply unlinked; make sure no `unusedN` still references it.
        let config = self.vm_config(&node, vmid).await?;
        let leftovers = disk_keys_with(&config, |f| f == volume.0);
        self.unlink(&node, vmid, leftovers).await?;
        Ok(())
    }
}
