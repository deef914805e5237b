//! The [`Hypervisor`] trait implementation: thin delegation to the verb modules.

use std::net::IpAddr;
use std::time::Duration;

use agentlab_core::hypervisor::{
    BootstrapData, GuestExec, Hypervisor, HypervisorError, ManagedVm, NodeHealth, PowerState,
    VmHandle, VmSpec, VolumeId,
};
use agentlab_core::ids::{Vmid, WorkspaceId};
use async_trait::async_trait;

use crate::pve::ProxmoxHypervisor;

#[async_trait]
impl Hypervisor for ProxmoxHypervisor {
    fn name(&self) -> &'static str {
        "pve"
    }
    async fn create(&self, spec: &VmSpec) -> Result<VmHandle, HypervisorError> {
        self.do_create(spec).await
    }
    async fn configure(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        self.do_configure(spec).await
    }
    async fn start(
        &self,
        vmid: Vmid,
        bootstrap: Option<&BootstrapData>,
    ) -> Result<(), HypervisorError> {
        self.do_start(vmid.get(), bootstrap).await
    }
    async fn stop(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        self.do_stop(vmid.get(), grace).await
    }
    async fn destroy(&self, vmid: Vmid) -> Result<(), HypervisorError> {
        self.do_destroy(vmid.get()).await
    }
    async fn status(&self, vmid: Vmid) -> Result<PowerState, HypervisorError> {
        self.do_status(vmid.get()).await
    }
    async fn guest_address(&self, vmid: Vmid) -> Result<Option<IpAddr>, HypervisorError> {
        self.do_guest_address(vmid.get()).await
    }
    async fn list_managed(&self) -> Result<Vec<ManagedVm>, HypervisorError> {
        self.do_list_managed().await
    }
    async fn used_ids(&self) -> Result<Vec<Vmid>, HypervisorError> {
        self.do_used_ids().await
    }
    async fn create_volume(
        &self,
        ws: &WorkspaceId,
        size_gb: u32,
    ) -> Result<VolumeId, HypervisorError> {
        self.do_create_volume(ws, size_gb).await
    }
    async fn delete_volume(&self, volume: &VolumeId) -> Result<(), HypervisorError> {
        self.do_delete_volume(volume).await
    }
    async fn attach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        self.do_attach_volume(vmid.get(), volume).await
    }
    async fn detach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        self.do_detach_volume(vmid.get(), volume).await
    }
    fn node_health(&self) -> Option<&dyn NodeHealth> {
        Some(self)
    }
    fn guest_exec(&self) -> Option<&dyn GuestExec> {
        Some(self)
    }
}
