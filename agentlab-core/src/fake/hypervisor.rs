//! [`FakeHypervisor`]: an in-memory [`Hypervisor`] that keeps VM and volume state, records every
//! call, and can be told to be slow or to fail.
//!
//! Behaviour the engine can rely on (and that real backends share, see
//! [`crate::testkit::hypervisor`]):
//! - `create` fails with `AlreadyExists` when the id is taken, by us or by a VM seeded with
//!   [`FakeHypervisor::seed_foreign_vm`]; any template id is accepted.
//! - Foreign VMs are visible to `status`, `guest_address` and `used_ids` only: every mutating
//!   call on them is `Rejected`, so a test can prove the engine never touches them.
//! - `configure` needs a stopped VM; `start` on a running VM is a `Conflict`; `stop` is
//!   idempotent. `start` delivers the bootstrap data to the [`BootHook`], if one is set.
//! - `destroy` of a VM with a workspace volume still attached frees the attachment and keeps the
//!   volume (a workspace is never the VM's own disk); the engine should detach first anyway.
//! - Volumes are named `fake:<workspace id>`; attaching an attached volume or deleting an
//!   attached volume is a `Conflict`; detaching a volume that is not attached is a no-op.
//!
//! Faults: [`FakeHypervisor::fail_once`] queues one-shot faults per [`FakeOp`] (used in order),
//! [`FakeHypervisor::fail_always`] sets a sticky one; one-shot faults win. A fault normally
//! fires before the operation has any effect; [`Fault::after_effect`] makes it fire after the
//! effect (a "timed out but happened anyway" backend). Latency ([`FakeHypervisor::set_latency`])
//! is a real `tokio::time::sleep` before the effect, meant only to widen race windows.
//!
//! [`FakeHypervisor::persistent`] keeps VMs and volumes in a JSON file (rewritten atomically
//! after every change, bootstrap data left out), so `agentlabd` with `backend: fake` can be
//! killed and restarted and still see what it created. Files: this one (state, inspection,
//! configuration), `hypervisor_faults.rs` (faults), `hypervisor_exec.rs` (the optional guest
//! exec) and `hypervisor_ops.rs` (the trait verbs).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::boot::BootHook;
#[cfg(doc)]
use crate::hypervisor::Hypervisor;
use crate::hypervisor::{BootstrapData, HypervisorError, PowerState, VmSpec, VolumeId};
use crate::ids::{Vmid, WorkspaceId};

#[path = "hypervisor_exec.rs"]
mod exec;
#[path = "hypervisor_faults.rs"]
mod faults;
#[path = "hypervisor_ops.rs"]
mod ops;
#[path = "hypervisor_usage.rs"]
mod usage;

pub use exec::GuestExecReply;
pub(crate) use faults::FaultPlan;
pub use faults::{FakeOp, Fault, FaultKind};

/// Node name the fake reports when the spec does not name one.
pub const FAKE_NODE: &str = "fake-node";

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCall {
    /// Operation.
    pub op: FakeOp,
    /// VM it targeted, if any.
    pub vmid: Option<Vmid>,
    /// Volume it targeted, if any (for `create_volume`, the id it would create).
    pub volume: Option<VolumeId>,
}

/// A VM as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FakeVm {
    /// Id.
    pub vmid: Vmid,
    /// Node (`spec.node` or [`FAKE_NODE`]).
    pub node: String,
    /// Power state.
    pub power: PowerState,
    /// The last spec given to `create`/`configure`; `None` for foreign VMs.
    pub spec: Option<VmSpec>,
    /// Created through this hypervisor (not seeded as foreign).
    pub ours: bool,
    /// Attached volumes.
    pub volumes: Vec<VolumeId>,
    /// Times it was started.
    pub starts: u32,
    /// Bootstrap data delivered by the last `start` that carried some (never persisted).
    #[serde(skip)]
    pub bootstrap: Option<BootstrapData>,
    /// `guest_address` calls since the last start.
    pub address_polls: u32,
    /// Guest CPU time reported through [`ProcessUsage`](crate::hypervisor::ProcessUsage)
    /// while running; `None` (the default) reports no usage. Set with
    /// [`FakeHypervisor::set_cpu_seconds`].
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
}

/// A workspace volume as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeVolume {
    /// Id (`fake:<workspace id>`).
    pub id: VolumeId,
    /// Workspace it was created for.
    pub workspace: WorkspaceId,
    /// Size in GiB.
    pub size_gb: u32,
    /// VM it is attached to.
    pub attached_to: Option<Vmid>,
}

impl FakeVm {
    /// A stopped VM; ours exactly when it has a spec.
    fn new(vmid: Vmid, node: String, spec: Option<VmSpec>) -> Self {
        let ours = spec.is_some();
        Self {
            vmid,
            node,
            power: PowerState::Stopped,
            spec,
            ours,
            volumes: Vec::new(),
            starts: 0,
            bootstrap: None,
            address_polls: 0,
            cpu_seconds: None,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    vms: BTreeMap<Vmid, FakeVm>,
    volumes: HashMap<VolumeId, FakeVolume>,
    calls: Vec<FakeCall>,
    latency: HashMap<FakeOp, Duration>,
    faults: FaultPlan<FakeOp, Fault>,
    address_delay_polls: u32,
    boot_hook: Option<Arc<dyn BootHook>>,
    state_file: Option<PathBuf>,
    exec: exec::ExecState,
}

/// What [`FakeHypervisor::persistent`] keeps on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    vms: Vec<FakeVm>,
    volumes: Vec<FakeVolume>,
}

/// Writes `state` to `path` through a temporary file and a rename.
fn write_state(path: &Path, state: &Persisted) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(state).map_err(io::Error::other)?,
    )?;
    fs::rename(&tmp, path)
}

/// In-memory [`Hypervisor`]; see the [module docs](self) for its rules.
#[derive(Debug, Default)]
pub struct FakeHypervisor {
    inner: Mutex<Inner>,
}

fn not_found(vmid: Vmid) -> HypervisorError {
    HypervisorError::NotFound(format!("VM {vmid}"))
}

fn volume_not_found(volume: &VolumeId) -> HypervisorError {
    HypervisorError::NotFound(format!("Volume {volume}"))
}

/// The VM if it exists and is ours; `NotFound` or `Rejected` otherwise.
fn ours_mut(inner: &mut Inner, vmid: Vmid) -> Result<&mut FakeVm, HypervisorError> {
    let vm = inner.vms.get_mut(&vmid).ok_or_else(|| not_found(vmid))?;
    if !vm.ours {
        return Err(HypervisorError::Rejected {
            reason: format!("VM {vmid} was not created by AgentLab"),
        });
    }
    Ok(vm)
}

impl FakeHypervisor {
    /// An empty fake: no VMs, no volumes, no faults, no latency, no boot hook.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fake whose VMs and volumes survive the process: loaded from `path` when it exists and
    /// saved there after every change, so a daemon killed with SIGKILL finds what it created.
    /// Bootstrap data is never written to the file.
    pub fn persistent(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let state: Persisted = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Persisted::default(),
            Err(err) => return Err(err),
        };
        let inner = Inner {
            vms: state.vms.into_iter().map(|vm| (vm.vmid, vm)).collect(),
            volumes: state
                .volumes
                .into_iter()
                .map(|v| (v.id.clone(), v))
                .collect(),
            state_file: Some(path),
            ..Inner::default()
        };
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seeds a stopped VM "not created by AgentLab" (counts in `used_ids`, refuses changes).
    pub fn seed_foreign_vm(&self, vmid: Vmid) {
        let vm = FakeVm::new(vmid, FAKE_NODE.to_owned(), None);
        self.lock().vms.insert(vmid, vm);
        self.persist();
    }

    /// Sets the hook told about starts, stops and destroys of our VMs.
    pub fn set_boot_hook(&self, hook: Arc<dyn BootHook>) {
        self.lock().boot_hook = Some(hook);
    }

    /// Makes `guest_address` answer `None` for the first `polls` calls after each start.
    pub fn set_guest_address_delay_polls(&self, polls: u32) {
        self.lock().address_delay_polls = polls;
    }

    /// Makes every call of `op` sleep `latency` before taking effect (zero removes it).
    pub fn set_latency(&self, op: FakeOp, latency: Duration) {
        let mut inner = self.lock();
        if latency.is_zero() {
            inner.latency.remove(&op);
        } else {
            inner.latency.insert(op, latency);
        }
    }

    /// Queues a fault for the next call of `op` (several queue up, used in order).
    pub fn fail_once(&self, op: FakeOp, fault: Fault) {
        self.lock().faults.once(op, fault);
    }

    /// Makes every call of `op` fail (after any queued one-shot faults) until cleared.
    pub fn fail_always(&self, op: FakeOp, fault: Fault) {
        self.lock().faults.always(op, fault);
    }

    /// Removes every one-shot and sticky fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    /// Calls that targeted `vmid`.
    pub fn calls_for(&self, vmid: Vmid) -> Vec<FakeCall> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.vmid == Some(vmid))
            .cloned()
            .collect()
    }

    /// Forgets the call log.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// All VMs (ours and foreign), by id.
    pub fn vms(&self) -> Vec<FakeVm> {
        self.lock().vms.values().cloned().collect()
    }

    /// One VM.
    pub fn vm(&self, vmid: Vmid) -> Option<FakeVm> {
        self.lock().vms.get(&vmid).cloned()
    }

    /// All volumes, by id.
    pub fn volumes(&self) -> Vec<FakeVolume> {
        let mut volumes: Vec<_> = self.lock().volumes.values().cloned().collect();
        volumes.sort_by(|a, b| a.id.0.cmp(&b.id.0));
        volumes
    }

    /// Ids of the VMs we created that still exist.
    pub fn owned_vm_ids(&self) -> Vec<Vmid> {
        self.lock()
            .vms
            .values()
            .filter(|vm| vm.ours)
            .map(|vm| vm.vmid)
            .collect()
    }

    /// Records the call, sleeps the configured latency and applies the fault plan: `Err` for a
    /// fault that fires now, `Ok(Some)` for one to fire after the effect.
    async fn enter(
        &self,
        op: FakeOp,
        vmid: Option<Vmid>,
        volume: Option<&VolumeId>,
    ) -> Result<Option<Fault>, HypervisorError> {
        debug!(op = ?op, sandbox = ?vmid, "fake hypervisor call");
        let (latency, fault) = {
            let mut inner = self.lock();
            inner.calls.push(FakeCall {
                op,
                vmid,
                volume: volume.cloned(),
            });
            (inner.latency.get(&op).copied(), inner.faults.take(&op))
        };
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
        match fault {
            Some(fault) if fault.after_effect => Ok(Some(fault)),
            Some(fault) => Err(fault.to_error()),
            None => Ok(None),
        }
    }

    /// Saves the state after a mutating operation, then turns a successful result into the
    /// held-back fault, if one fires after the effect.
    fn finish<T>(
        &self,
        op: FakeOp,
        late: Option<Fault>,
        result: Result<T, HypervisorError>,
    ) -> Result<T, HypervisorError> {
        if op.is_mutating() {
            self.persist();
        }
        match (late, result) {
            (Some(fault), Ok(_)) => Err(fault.to_error()),
            (_, result) => result,
        }
    }

    /// Writes VMs and volumes to the state file, if there is one (atomically, under the lock
    /// so that the file never goes back to an older state).
    fn persist(&self) {
        let inner = self.lock();
        let Some(path) = &inner.state_file else {
            return;
        };
        let state = Persisted {
            vms: inner.vms.values().cloned().collect(),
            volumes: inner.volumes.values().cloned().collect(),
        };
        if let Err(err) = write_state(path, &state) {
            warn!(path = %path.display(), error = %err, "cannot save fake hypervisor state");
        }
    }

    fn hook(&self) -> Option<Arc<dyn BootHook>> {
        self.lock().boot_hook.clone()
    }
}
