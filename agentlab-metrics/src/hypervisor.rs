//! [`MeteredHypervisor`]: a [`Hypervisor`] decorator that records every call's latency in
//! `agentlab_backend_call_duration_seconds{backend,call}` and every failure in
//! `agentlab_backend_call_errors_total{backend,call,kind}`, then returns the inner backend's
//! answer unchanged. Optional abilities are offered exactly when the inner backend offers
//! them, and are metered the same way.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use agentlab_core::hypervisor::{
    BootstrapData, GuestExec, GuestExecError, GuestExecOutput, GuestExecRequest, ManagedVm,
    NodeHealth, NodeStatus, PowerState, ProcessUsage, VmHandle, VmSpec, VmUsage, VolumeId,
};
use agentlab_core::{Hypervisor, HypervisorError, Vmid, WorkspaceId};

use crate::families::{CallErrorLabels, CallLabels, Metrics};

/// Wraps a backend and meters its calls.
pub struct MeteredHypervisor {
    inner: Arc<dyn Hypervisor>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for MeteredHypervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteredHypervisor")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The snake-case kind of a hypervisor error, the `kind` label.
pub(crate) fn error_kind(e: &HypervisorError) -> &'static str {
    match e {
        HypervisorError::NotFound(_) => "not_found",
        HypervisorError::AlreadyExists(_) => "already_exists",
        HypervisorError::Conflict(_) => "conflict",
        HypervisorError::Unavailable(_) => "unavailable",
        HypervisorError::Timeout(_) => "timeout",
        HypervisorError::Rejected { .. } => "rejected",
        HypervisorError::Backend(_) => "backend",
    }
}

fn exec_error_kind(e: &GuestExecError) -> &'static str {
    match e {
        GuestExecError::AgentUnavailable(_) => "agent_unavailable",
        GuestExecError::TimedOut(_) => "timeout",
        GuestExecError::Failed(_) => "failed",
        GuestExecError::Hypervisor(h) => error_kind(h),
    }
}

impl MeteredHypervisor {
    /// Meters `inner` into `metrics`.
    pub fn new(inner: Arc<dyn Hypervisor>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    /// Records one finished call.
    fn observe(&self, call: &'static str, elapsed: Duration, error: Option<&'static str>) {
        let backend = self.inner.name().to_owned();
        self.metrics
            .backend_call
            .get_or_create(&CallLabels {
                backend: backend.clone(),
                call: call.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = error {
            self.metrics
                .backend_errors
                .get_or_create(&CallErrorLabels {
                    backend,
                    call: call.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }
    }

    async fn timed<T>(
        &self,
        call: &'static str,
        fut: impl Future<Output = Result<T, HypervisorError>>,
    ) -> Result<T, HypervisorError> {
        let began = Instant::now();
        let r = fut.await;
        self.observe(call, began.elapsed(), r.as_ref().err().map(error_kind));
        r
    }
}

/// The error answered when an optional ability vanished from the inner backend between
/// being offered and being used (backends decide once, at construction; never expected).
fn ability_gone(what: &str) -> HypervisorError {
    HypervisorError::Rejected {
        reason: format!("the backend no longer offers {what}"),
    }
}

#[async_trait]
impl Hypervisor for MeteredHypervisor {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn create(&self, spec: &VmSpec) -> Result<VmHandle, HypervisorError> {
        self.timed("create", self.inner.create(spec)).await
    }
    async fn configure(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        self.timed("configure", self.inner.configure(spec)).await
    }
    async fn start(
        &self,
        vmid: Vmid,
        bootstrap: Option<&BootstrapData>,
    ) -> Result<(), HypervisorError> {
        self.timed("start", self.inner.start(vmid, bootstrap)).await
    }
    async fn stop(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        self.timed("stop", self.inner.stop(vmid, grace)).await
    }
    async fn destroy(&self, vmid: Vmid) -> Result<(), HypervisorError> {
        self.timed("destroy", self.inner.destroy(vmid)).await
    }
    async fn status(&self, vmid: Vmid) -> Result<PowerState, HypervisorError> {
        self.timed("status", self.inner.status(vmid)).await
    }
    async fn guest_address(&self, vmid: Vmid) -> Result<Option<IpAddr>, HypervisorError> {
        self.timed("guest_address", self.inner.guest_address(vmid))
            .await
    }
    async fn list_managed(&self) -> Result<Vec<ManagedVm>, HypervisorError> {
        self.timed("list_managed", self.inner.list_managed()).await
    }
    async fn used_ids(&self) -> Result<Vec<Vmid>, HypervisorError> {
        self.timed("used_ids", self.inner.used_ids()).await
    }
    async fn create_volume(
        &self,
        ws: &WorkspaceId,
        size_gb: u32,
    ) -> Result<VolumeId, HypervisorError> {
        self.timed("create_volume", self.inner.create_volume(ws, size_gb))
            .await
    }
    async fn delete_volume(&self, volume: &VolumeId) -> Result<(), HypervisorError> {
        self.timed("delete_volume", self.inner.delete_volume(volume))
            .await
    }
    async fn attach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        self.timed("attach_volume", self.inner.attach_volume(vmid, volume))
            .await
    }
    async fn detach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        self.timed("detach_volume", self.inner.detach_volume(vmid, volume))
            .await
    }
    fn node_health(&self) -> Option<&dyn NodeHealth> {
        self.inner.node_health().map(|_| self as &dyn NodeHealth)
    }
    fn process_usage(&self) -> Option<&dyn ProcessUsage> {
        self.inner
            .process_usage()
            .map(|_| self as &dyn ProcessUsage)
    }
    fn guest_exec(&self) -> Option<&dyn GuestExec> {
        self.inner.guest_exec().map(|_| self as &dyn GuestExec)
    }
}

#[async_trait]
impl NodeHealth for MeteredHypervisor {
    async fn node_status(&self) -> Result<Vec<NodeStatus>, HypervisorError> {
        match self.inner.node_health() {
            Some(n) => self.timed("node_status", n.node_status()).await,
            None => Err(ability_gone("node health")),
        }
    }
}

#[async_trait]
impl ProcessUsage for MeteredHypervisor {
    async fn usage(&self, vmid: Vmid) -> Result<Option<VmUsage>, HypervisorError> {
        match self.inner.process_usage() {
            Some(p) => self.timed("process_usage", p.usage(vmid)).await,
            None => Err(ability_gone("process usage")),
        }
    }
}

#[async_trait]
impl GuestExec for MeteredHypervisor {
    async fn exec(
        &self,
        vmid: Vmid,
        req: &GuestExecRequest,
    ) -> Result<GuestExecOutput, GuestExecError> {
        let Some(g) = self.inner.guest_exec() else {
            return Err(GuestExecError::Hypervisor(ability_gone("guest exec")));
        };
        let began = Instant::now();
        let r = g.exec(vmid, req).await;
        self.observe(
            "guest_exec",
            began.elapsed(),
            r.as_ref().err().map(exec_error_kind),
        );
        r
    }
}

#[cfg(test)]
#[path = "hypervisor_tests.rs"]
mod tests;
