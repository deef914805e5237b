//! [`GuestExec`] of [`FakeHypervisor`]: off until [`FakeHypervisor::enable_guest_exec`] gives
//! it a reply; then every call is recorded ([`FakeHypervisor::guest_exec_calls`]) and answered
//! by the reply when the VM exists and runs (else `NotFound` / `AgentUnavailable`, as real
//! backends answer).

use std::sync::Arc;

use async_trait::async_trait;

use super::{FakeHypervisor, not_found};
use crate::hypervisor::{GuestExec, GuestExecError, GuestExecOutput, GuestExecRequest, PowerState};
use crate::ids::Vmid;

/// How the fake answers a guest exec.
pub type GuestExecReply =
    Arc<dyn Fn(&GuestExecRequest) -> Result<GuestExecOutput, GuestExecError> + Send + Sync>;

/// The fake's guest-exec setup and record.
#[derive(Default)]
pub(super) struct ExecState {
    pub(super) reply: Option<GuestExecReply>,
    pub(super) calls: Vec<(Vmid, GuestExecRequest)>,
}

impl std::fmt::Debug for ExecState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecState")
            .field("enabled", &self.reply.is_some())
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl FakeHypervisor {
    /// Offers [`GuestExec`] from now on, answering with `reply` (after the checks above).
    pub fn enable_guest_exec(&self, reply: GuestExecReply) {
        self.lock().exec.reply = Some(reply);
    }

    /// Every guest exec so far, in order.
    pub fn guest_exec_calls(&self) -> Vec<(Vmid, GuestExecRequest)> {
        self.lock().exec.calls.clone()
    }

    /// Whether [`FakeHypervisor::enable_guest_exec`] was called.
    pub(super) fn offers_guest_exec(&self) -> bool {
        self.lock().exec.reply.is_some()
    }
}

#[async_trait]
impl GuestExec for FakeHypervisor {
    async fn exec(
        &self,
        vmid: Vmid,
        req: &GuestExecRequest,
    ) -> Result<GuestExecOutput, GuestExecError> {
        let reply = {
            let mut inner = self.lock();
            inner.exec.calls.push((vmid, req.clone()));
            let power = inner.vms.get(&vmid).map(|vm| vm.power);
            match power {
                None => return Err(not_found(vmid).into()),
                Some(PowerState::Running) => {}
                Some(_) => {
                    return Err(GuestExecError::AgentUnavailable(format!(
                        "VM {vmid} is not running"
                    )));
                }
            }
            inner.exec.reply.clone().ok_or_else(|| {
                GuestExecError::AgentUnavailable("no guest agent configured".into())
            })?
        };
        let mut out = reply(req)?;
        out.cap(req.max_output);
        Ok(out)
    }
}
