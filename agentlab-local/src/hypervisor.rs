//! [`LocalHypervisor`]: the [`Hypervisor`] trait over [`crate::ops`] and [`crate::volumes`],
//! each call on a blocking thread.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::{
    BootstrapData, Hypervisor, HypervisorError, ManagedVm, PowerState, VmHandle, VmSpec, Vmid,
    VolumeId, WorkspaceId,
};
use async_trait::async_trait;

use crate::ops::Inner;
use crate::options::LocalOptions;

/// Node name reported for local sandboxes.
const NODE: &str = "local";

/// Sandboxes as bubblewrap process trees in network namespaces; see the [crate docs](crate).
///
/// Dropping it leaves running sandboxes alone: a new instance over the same state directory
/// finds them again.
#[derive(Debug, Clone)]
pub struct LocalHypervisor {
    inner: Arc<Inner>,
}

impl LocalHypervisor {
    /// A backend with these options. It removes half-made sandbox directories a crash during
    /// `create` (or `destroy`) left in the state directory, tearing down what they started
    /// (blocking); nothing else is touched until the first call. The bridge must exist before
    /// `create` (see [`crate::setup_bridge`]).
    pub fn new(opts: LocalOptions) -> Self {
        let inner = Inner::new(opts);
        inner.cleanup_incomplete();
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Its options.
    pub fn options(&self) -> &LocalOptions {
        &self.inner.opts
    }

    async fn run<T, F>(&self, f: F) -> Result<T, HypervisorError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, HypervisorError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| HypervisorError::Backend(Box::new(e)))?
    }
}

#[async_trait]
impl agentlab_core::ProcessUsage for LocalHypervisor {
    async fn usage(&self, vmid: Vmid) -> Result<Option<agentlab_core::VmUsage>, HypervisorError> {
        self.run(move |i| i.usage(vmid)).await
    }
}

#[async_trait]
impl Hypervisor for LocalHypervisor {
    fn process_usage(&self) -> Option<&dyn agentlab_core::ProcessUsage> {
        Some(self)
    }

    fn name(&self) -> &'static str {
        "local"
    }

    async fn create(&self, spec: &VmSpec) -> Result<VmHandle, HypervisorError> {
        let s = spec.clone();
        self.run(move |i| i.create(&s)).await?;
        Ok(VmHandle {
            vmid: spec.vmid,
            node: NODE.to_owned(),
            iface: Some(LocalOptions::host_veth(spec.vmid)),
        })
    }

    async fn configure(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let s = spec.clone();
        self.run(move |i| i.configure(&s)).await
    }

    async fn start(
        &self,
        vmid: Vmid,
        bootstrap: Option<&BootstrapData>,
    ) -> Result<(), HypervisorError> {
        let b = bootstrap.cloned();
        self.run(move |i| i.start(vmid, b.as_ref())).await
    }

    async fn stop(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        self.run(move |i| i.stop(vmid, grace)).await
    }

    async fn destroy(&self, vmid: Vmid) -> Result<(), HypervisorError> {
        self.run(move |i| i.destroy(vmid)).await
    }

    async fn status(&self, vmid: Vmid) -> Result<PowerState, HypervisorError> {
        self.run(move |i| i.status(vmid)).await
    }

    async fn guest_address(&self, vmid: Vmid) -> Result<Option<IpAddr>, HypervisorError> {
        self.run(move |i| i.guest_address(vmid)).await
    }

    async fn list_managed(&self) -> Result<Vec<ManagedVm>, HypervisorError> {
        self.run(|i| {
            let ids = i.layout.list()?;
            Ok(ids
                .into_iter()
                .map(|vmid| ManagedVm {
                    vmid,
                    node: NODE.to_owned(),
                    power: if i.procs(vmid).is_empty() {
                        PowerState::Stopped
                    } else {
                        PowerState::Running
                    },
                })
                .collect())
        })
        .await
    }

    async fn used_ids(&self) -> Result<Vec<Vmid>, HypervisorError> {
        self.run(Inner::used_ids).await
    }

    async fn create_volume(
        &self,
        ws: &WorkspaceId,
        _size_gb: u32,
    ) -> Result<VolumeId, HypervisorError> {
        let ws = ws.clone();
        self.run(move |i| i.create_volume(&ws)).await
    }

    async fn delete_volume(&self, volume: &VolumeId) -> Result<(), HypervisorError> {
        let v = volume.clone();
        self.run(move |i| i.delete_volume(&v)).await
    }

    async fn attach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        let v = volume.clone();
        self.run(move |i| i.attach_volume(vmid, &v)).await
    }

    async fn detach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        let v = volume.clone();
        self.run(move |i| i.detach_volume(vmid, &v)).await
    }
}
