//! [`QemuHypervisor`]: the [`Hypervisor`] trait over [`crate::ops`] and the volume operations;
//! file and process work runs on blocking threads, QMP and the guest agent on the runtime.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::config::Config;
use agentlab_core::{
    BootstrapData, Hypervisor, HypervisorError, ManagedVm, PowerState, ProcessUsage, VmHandle,
    VmSpec, VmUsage, Vmid, VolumeId, WorkspaceId,
};
use async_trait::async_trait;

use crate::accel::{Accel, choose};
use crate::error::QemuError;
use crate::net::tap_name;
use crate::ops::{Inner, blocking};
use crate::options::{Boot, QemuOptions};

const NODE: &str = "qemu";

/// Sandboxes as QEMU VMs on this host.
#[derive(Debug, Clone)]
pub struct QemuHypervisor {
    inner: Arc<Inner>,
}

impl QemuHypervisor {
    /// A backend over `opts` running its VMs with `accel` (see [`crate::accel::choose`]).
    /// Removes half-created VM directories. Blocking (briefly).
    pub fn new(opts: QemuOptions, accel: Accel) -> Self {
        let inner = Inner::new(opts, accel);
        inner.cleanup_incomplete();
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The backend for `backend: qemu`: checks QEMU, `qemu-img` and the image, resolves
    /// `qemu.accel`, creates the agent bridge (`network.bridge` with `network.gateway`) and
    /// enables forwarding.
    pub async fn from_config(cfg: &Config) -> Result<Self, QemuError> {
        let opts = QemuOptions::from_config(cfg);
        let net = agentlab_net::NetConfig {
            bridge: cfg.network.bridge.clone(),
            subnet_v4: cfg.network.subnet,
            gateway_v4: cfg.network.gateway,
            subnet_v6: None,
            gateway_v6: None,
            ..agentlab_net::NetConfig::default()
        };
        let o = opts.clone();
        let accel = tokio::task::spawn_blocking(move || {
            check_tools(&o)?;
            crate::layout::Layout::mkdir(&o.state_dir)?;
            agentlab_net::bridge::create_bridge(&net, None)?;
            agentlab_net::bridge::enable_forwarding(Path::new("/proc/sys"))?;
            choose(o.accel)
        })
        .await
        .map_err(|e| QemuError::Missing(format!("Setup task failed: {e}")))??;
        Ok(Self::new(opts, accel))
    }

    /// The options.
    pub fn options(&self) -> &QemuOptions {
        &self.inner.opts
    }

    /// The accelerator VMs run with.
    pub fn accel(&self) -> Accel {
        self.inner.accel
    }

    /// The QEMU process id of a running sandbox.
    pub fn qemu_pid(&self, vmid: Vmid) -> Option<i32> {
        self.inner.pid(vmid)
    }

    /// Resident memory of a running sandbox's QEMU process in KiB.
    pub fn qemu_rss_kib(&self, vmid: Vmid) -> Option<u64> {
        self.inner.pid(vmid).and_then(crate::proc::rss_kib)
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

    /// The VM's directory and whether its QEMU process runs; `NotFound` when it does not
    /// exist.
    pub(crate) async fn vm_dir_and_running(
        &self,
        vmid: Vmid,
    ) -> Result<(std::path::PathBuf, bool), HypervisorError> {
        self.run(move |i| {
            i.record(vmid)?;
            Ok((i.dir(vmid), i.pid(vmid).is_some()))
        })
        .await
    }
}

/// Fails naming the missing piece and how to get it.
fn check_tools(o: &QemuOptions) -> Result<(), QemuError> {
    let found = |p: &Path| {
        p.is_absolute() && p.is_file()
            || std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
    };
    if !found(&o.binary) {
        return Err(QemuError::Missing(format!(
            "{} not found (apt-get install qemu-system-x86)",
            o.binary.display()
        )));
    }
    if !found(&o.qemu_img) {
        return Err(QemuError::Missing(
            "qemu-img not found (apt-get install qemu-utils)".to_owned(),
        ));
    }
    let need: &[&str] = match o.boot {
        Boot::Disk => &["disk.qcow2"],
        Boot::Kernel => &["disk.qcow2", "vmlinuz", "initrd.img"],
    };
    if let Some(f) = need.iter().find(|f| !o.image.join(f).is_file()) {
        return Err(QemuError::Missing(format!(
            "{} not found: build the image (agentlab image build --out {})",
            o.image.join(f).display(),
            o.image.display()
        )));
    }
    Ok(())
}

#[async_trait]
impl ProcessUsage for QemuHypervisor {
    async fn usage(&self, vmid: Vmid) -> Result<Option<VmUsage>, HypervisorError> {
        self.run(move |inner| {
            Ok(inner.pid(vmid).and_then(|pid| {
                Some(VmUsage {
                    pid: u32::try_from(pid).ok()?,
                    rss_bytes: crate::proc::rss_kib(pid)? * 1024,
                    cpu_seconds: crate::proc::cpu_seconds(pid)?,
                })
            }))
        })
        .await
    }
}

#[async_trait]
impl Hypervisor for QemuHypervisor {
    fn name(&self) -> &'static str {
        "qemu"
    }

    async fn create(&self, spec: &VmSpec) -> Result<VmHandle, HypervisorError> {
        let s = spec.clone();
        self.run(move |i| i.create(&s)).await?;
        Ok(VmHandle {
            vmid: spec.vmid,
            node: NODE.to_owned(),
            iface: Some(tap_name(spec.vmid)),
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
        self.run(move |i| i.record(vmid).map(|_| ())).await?;
        if self.inner.pid(vmid).is_none() {
            self.run(move |i| i.launch(vmid).map_err(HypervisorError::from))
                .await?;
        }
        if let Err(e) = self.inner.await_agent(vmid, bootstrap).await {
            tracing::warn!(sandbox = %vmid, error = %e, "boot failed; killing the VM");
            let inner = Arc::clone(&self.inner);
            let _ = blocking(move || inner.kill(vmid)).await;
            return Err(e.into());
        }
        Ok(())
    }

    async fn stop(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        self.run(move |i| i.record(vmid).map(|_| ())).await?;
        if self.inner.pid(vmid).is_some() && !grace.is_zero() {
            let clean = self.inner.graceful(vmid, grace).await;
            tracing::info!(sandbox = %vmid, clean, "VM stopped");
        }
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.kill(vmid)).await
    }

    async fn destroy(&self, vmid: Vmid) -> Result<(), HypervisorError> {
        self.run(move |i| {
            i.record(vmid)?;
            i.kill(vmid)?;
            let dir = i.dir(vmid);
            std::fs::remove_dir_all(&dir)
                .map_err(QemuError::io("remove", &dir))
                .map_err(HypervisorError::from)
        })
        .await
    }

    async fn status(&self, vmid: Vmid) -> Result<PowerState, HypervisorError> {
        self.inner.status(vmid).await
    }

    async fn guest_address(&self, vmid: Vmid) -> Result<Option<IpAddr>, HypervisorError> {
        self.inner.guest_address(vmid).await
    }

    async fn list_managed(&self) -> Result<Vec<ManagedVm>, HypervisorError> {
        self.run(|i| {
            Ok(i.layout
                .list()?
                .into_iter()
                .map(|vmid| ManagedVm {
                    vmid,
                    node: NODE.to_owned(),
                    power: if i.pid(vmid).is_some() {
                        PowerState::Running
                    } else {
                        PowerState::Stopped
                    },
                })
                .collect())
        })
        .await
    }

    async fn used_ids(&self) -> Result<Vec<Vmid>, HypervisorError> {
        self.run(|i| Ok(i.layout.dirs()?.into_iter().map(|(v, _)| v).collect()))
            .await
    }

    fn process_usage(&self) -> Option<&dyn ProcessUsage> {
        Some(self)
    }

    fn guest_exec(&self) -> Option<&dyn agentlab_core::hypervisor::GuestExec> {
        Some(self)
    }

    async fn create_volume(
        &self,
        ws: &WorkspaceId,
        size_gb: u32,
    ) -> Result<VolumeId, HypervisorError> {
        let ws = ws.clone();
        self.run(move |i| i.create_volume(&ws, size_gb)).await
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
