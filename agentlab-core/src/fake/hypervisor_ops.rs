//! The [`Hypervisor`] verbs of [`FakeHypervisor`] (split from `hypervisor.rs` by verb, like
//! youki's `container_*.rs`); the rules they follow are in the parent module's docs.

use std::collections::btree_map::Entry;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    FAKE_NODE, FakeHypervisor, FakeOp, FakeVm, FakeVolume, not_found, ours_mut, volume_not_found,
};
use crate::fake::boot::BootEvent;
use crate::hypervisor::{
    BootstrapData, GuestExec, Hypervisor, HypervisorError, ManagedVm, PowerState, VmHandle, VmSpec,
    VolumeId,
};
use crate::ids::{Vmid, WorkspaceId};

/// Runs a blocking hook callback off the async threads.
async fn run_hook<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HypervisorError> + Send + 'static,
) -> Result<T, HypervisorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HypervisorError::Backend(Box::new(e)))?
}

#[async_trait]
impl Hypervisor for FakeHypervisor {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn guest_exec(&self) -> Option<&dyn GuestExec> {
        self.offers_guest_exec().then_some(self as &dyn GuestExec)
    }

    fn process_usage(&self) -> Option<&dyn crate::hypervisor::ProcessUsage> {
        Some(self)
    }

    async fn create(&self, spec: &VmSpec) -> Result<VmHandle, HypervisorError> {
        let late = self.enter(FakeOp::Create, Some(spec.vmid), None).await?;
        let node = spec.node.clone().unwrap_or_else(|| FAKE_NODE.to_owned());
        let result = match self.lock().vms.entry(spec.vmid) {
            Entry::Occupied(_) => Err(HypervisorError::AlreadyExists(format!("VM {}", spec.vmid))),
            Entry::Vacant(slot) => {
                slot.insert(FakeVm::new(spec.vmid, node.clone(), Some(spec.clone())));
                let iface = Some(format!("tap{}i0", spec.vmid));
                Ok(VmHandle {
                    vmid: spec.vmid,
                    node,
                    iface,
                })
            }
        };
        self.finish(FakeOp::Create, late, result)
    }

    async fn configure(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let late = self.enter(FakeOp::Configure, Some(spec.vmid), None).await?;
        let result = {
            let mut inner = self.lock();
            ours_mut(&mut inner, spec.vmid).and_then(|vm| {
                if vm.power != PowerState::Stopped {
                    return Err(HypervisorError::Conflict(format!(
                        "VM {} is not stopped",
                        spec.vmid
                    )));
                }
                vm.spec = Some(spec.clone());
                Ok(())
            })
        };
        self.finish(FakeOp::Configure, late, result)
    }

    async fn start(
        &self,
        vmid: Vmid,
        bootstrap: Option<&BootstrapData>,
    ) -> Result<(), HypervisorError> {
        let late = self.enter(FakeOp::Start, Some(vmid), None).await?;
        let event = {
            let mut inner = self.lock();
            let vm = ours_mut(&mut inner, vmid)?;
            if vm.power == PowerState::Running {
                return Err(HypervisorError::Conflict(format!(
                    "VM {vmid} is already running"
                )));
            }
            let spec = vm
                .spec
                .clone()
                .ok_or_else(|| HypervisorError::backend("VM has no spec"))?;
            vm.power = PowerState::Running;
            vm.starts += 1;
            vm.address_polls = 0;
            if bootstrap.is_some() {
                vm.bootstrap = bootstrap.cloned();
            }
            BootEvent {
                vmid,
                bootstrap: bootstrap.cloned(),
                spec,
            }
        };
        if let Some(hook) = self.hook() {
            let result = run_hook(move || {
                hook.on_start(&event)
                    .map_err(|e| HypervisorError::Backend(Box::new(e)))
            })
            .await;
            if let Err(err) = result {
                if let Some(vm) = self.lock().vms.get_mut(&vmid) {
                    vm.power = PowerState::Stopped;
                }
                return Err(err);
            }
        }
        self.finish(FakeOp::Start, late, Ok(()))
    }

    async fn stop(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        let late = self.enter(FakeOp::Stop, Some(vmid), None).await?;
        let was_running = {
            let mut inner = self.lock();
            let vm = ours_mut(&mut inner, vmid)?;
            let was_running = vm.power != PowerState::Stopped;
            vm.power = PowerState::Stopped;
            was_running
        };
        if let (true, Some(hook)) = (was_running, self.hook()) {
            run_hook(move || {
                hook.on_stop(vmid, grace);
                Ok(())
            })
            .await?;
        }
        self.finish(FakeOp::Stop, late, Ok(()))
    }

    async fn destroy(&self, vmid: Vmid) -> Result<(), HypervisorError> {
        let late = self.enter(FakeOp::Destroy, Some(vmid), None).await?;
        {
            let mut inner = self.lock();
            ours_mut(&mut inner, vmid)?;
            inner.vms.remove(&vmid);
            for volume in inner
                .volumes
                .values_mut()
                .filter(|v| v.attached_to == Some(vmid))
            {
                volume.attached_to = None;
            }
        }
        if let Some(hook) = self.hook() {
            run_hook(move || {
                hook.on_destroy(vmid);
                Ok(())
            })
            .await?;
        }
        self.finish(FakeOp::Destroy, late, Ok(()))
    }

    async fn status(&self, vmid: Vmid) -> Result<PowerState, HypervisorError> {
        let late = self.enter(FakeOp::Status, Some(vmid), None).await?;
        let result = self
            .lock()
            .vms
            .get(&vmid)
            .map(|vm| vm.power)
            .ok_or_else(|| not_found(vmid));
        self.finish(FakeOp::Status, late, result)
    }

    async fn guest_address(&self, vmid: Vmid) -> Result<Option<IpAddr>, HypervisorError> {
        let late = self.enter(FakeOp::GuestAddress, Some(vmid), None).await?;
        let result = {
            let mut inner = self.lock();
            let delay = inner.address_delay_polls;
            inner
                .vms
                .get_mut(&vmid)
                .ok_or_else(|| not_found(vmid))
                .map(|vm| {
                    if vm.power != PowerState::Running {
                        return None;
                    }
                    vm.address_polls = vm.address_polls.saturating_add(1);
                    let spec = vm.spec.as_ref()?;
                    (vm.address_polls > delay).then_some(spec.net.ip)
                })
        };
        self.finish(FakeOp::GuestAddress, late, result)
    }

    async fn list_managed(&self) -> Result<Vec<ManagedVm>, HypervisorError> {
        let late = self.enter(FakeOp::ListManaged, None, None).await?;
        let vms = self
            .lock()
            .vms
            .values()
            .filter(|vm| vm.ours)
            .map(|vm| ManagedVm {
                vmid: vm.vmid,
                node: vm.node.clone(),
                power: vm.power,
            })
            .collect();
        self.finish(FakeOp::ListManaged, late, Ok(vms))
    }

    async fn used_ids(&self) -> Result<Vec<Vmid>, HypervisorError> {
        let late = self.enter(FakeOp::UsedIds, None, None).await?;
        let ids = self.lock().vms.keys().copied().collect();
        self.finish(FakeOp::UsedIds, late, Ok(ids))
    }

    async fn create_volume(
        &self,
        ws: &WorkspaceId,
        size_gb: u32,
    ) -> Result<VolumeId, HypervisorError> {
        let id = VolumeId(format!("fake:{}", ws.as_str()));
        let late = self.enter(FakeOp::CreateVolume, None, Some(&id)).await?;
        let result = {
            let mut inner = self.lock();
            if inner.volumes.contains_key(&id) {
                Err(HypervisorError::AlreadyExists(format!("Volume {id}")))
            } else {
                let volume = FakeVolume {
                    id: id.clone(),
                    workspace: ws.clone(),
                    size_gb,
                    attached_to: None,
                };
                inner.volumes.insert(id.clone(), volume);
                Ok(id)
            }
        };
        self.finish(FakeOp::CreateVolume, late, result)
    }

    async fn delete_volume(&self, volume: &VolumeId) -> Result<(), HypervisorError> {
        let late = self.enter(FakeOp::DeleteVolume, None, Some(volume)).await?;
        let result = {
            let mut inner = self.lock();
            match inner.volumes.get(volume) {
                None => Err(volume_not_found(volume)),
                Some(FakeVolume {
                    attached_to: Some(vmid),
                    ..
                }) => Err(HypervisorError::Conflict(format!(
                    "Volume {volume} is attached to VM {vmid}"
                ))),
                Some(_) => {
                    inner.volumes.remove(volume);
                    Ok(())
                }
            }
        };
        self.finish(FakeOp::DeleteVolume, late, result)
    }

    async fn attach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        let late = self
            .enter(FakeOp::AttachVolume, Some(vmid), Some(volume))
            .await?;
        let result = {
            let mut inner = self.lock();
            let attached_to = inner.volumes.get(volume).map(|v| v.attached_to);
            match attached_to {
                None => Err(volume_not_found(volume)),
                Some(Some(other)) => Err(HypervisorError::Conflict(format!(
                    "Volume {volume} is attached to VM {other}"
                ))),
                Some(None) => ours_mut(&mut inner, vmid).map(|vm| vm.volumes.push(volume.clone())),
            }
            .map(|()| {
                if let Some(v) = inner.volumes.get_mut(volume) {
                    v.attached_to = Some(vmid);
                }
            })
        };
        self.finish(FakeOp::AttachVolume, late, result)
    }

    async fn detach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        let late = self
            .enter(FakeOp::DetachVolume, Some(vmid), Some(volume))
            .await?;
        let result = {
            let mut inner = self.lock();
            let attached_to = inner.volumes.get(volume).map(|v| v.attached_to);
            match attached_to {
                None => Err(volume_not_found(volume)),
                Some(Some(other)) if other != vmid => Err(HypervisorError::Conflict(format!(
                    "Volume {volume} is attached to VM {other}"
                ))),
                Some(_) => ours_mut(&mut inner, vmid).map(|vm| vm.volumes.retain(|v| v != volume)),
            }
            .map(|()| {
                if let Some(v) = inner.volumes.get_mut(volume) {
                    v.attached_to = None;
                }
            })
        };
        self.finish(FakeOp::DetachVolume, late, result)
    }
}
