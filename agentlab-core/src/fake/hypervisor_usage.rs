//! [`ProcessUsage`] of [`FakeHypervisor`]: a running VM reports the CPU time a test set with
//! [`FakeHypervisor::set_cpu_seconds`] (idle stop reads it); a VM without one reports nothing.

use async_trait::async_trait;

use super::{FakeHypervisor, not_found};
use crate::hypervisor::{HypervisorError, PowerState, ProcessUsage, VmUsage};
use crate::ids::Vmid;

impl FakeHypervisor {
    /// Sets the guest CPU time `vmid` reports from now on (seconds since its start).
    pub fn set_cpu_seconds(&self, vmid: Vmid, seconds: f64) -> Result<(), HypervisorError> {
        let mut inner = self.lock();
        let vm = inner.vms.get_mut(&vmid).ok_or_else(|| not_found(vmid))?;
        vm.cpu_seconds = Some(seconds);
        Ok(())
    }
}

#[async_trait]
impl ProcessUsage for FakeHypervisor {
    async fn usage(&self, vmid: Vmid) -> Result<Option<VmUsage>, HypervisorError> {
        let inner = self.lock();
        let vm = inner.vms.get(&vmid).ok_or_else(|| not_found(vmid))?;
        Ok(vm
            .cpu_seconds
            .filter(|_| vm.power == PowerState::Running)
            .map(|cpu_seconds| VmUsage {
                pid: vmid.get(),
                rss_bytes: 0,
                cpu_seconds,
            }))
    }
}
