//! [`FakeFirewall`]: an in-memory [`Firewall`] that keeps the enforced state and records calls.
//!
//! Rules it shares with the real nftables backend: `ensure_base` is idempotent; `allow` needs
//! the base policy in place (`Rejected` otherwise), checks the MAC's syntax (`Invalid`) and
//! replaces an earlier entry for the same VM; `remove` of an unknown VM is a no-op. `describe`
//! lists sandboxes by VM id. Faults work like the hypervisor fake's: one-shot
//! ([`FakeFirewall::fail_once`]) or sticky ([`FakeFirewall::fail_always`]), firing before the
//! operation has any effect.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tracing::debug;

use super::hypervisor::FaultPlan;
use crate::firewall::{Firewall, FirewallError, FirewallState, SandboxNet};
use crate::ids::Vmid;

/// One [`Firewall`] operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FirewallOp {
    /// [`Firewall::ensure_base`].
    EnsureBase,
    /// [`Firewall::allow`].
    Allow,
    /// [`Firewall::remove`].
    Remove,
    /// [`Firewall::describe`].
    Describe,
}

/// Which [`FirewallError`] variant an injected [`FirewallFault`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FirewallFaultKind {
    /// [`FirewallError::Rejected`].
    Rejected,
    /// [`FirewallError::Unavailable`].
    Unavailable,
    /// [`FirewallError::Invalid`].
    Invalid,
    /// [`FirewallError::Backend`].
    Backend,
}

/// An injected firewall failure, rebuilt into a fresh error each time it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallFault {
    /// Error variant.
    pub kind: FirewallFaultKind,
    /// Message carried by the error.
    pub message: String,
}

impl FirewallFault {
    /// A fault of `kind` carrying `message`.
    pub fn new(kind: FirewallFaultKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The error this fault produces.
    pub fn to_error(&self) -> FirewallError {
        let msg = self.message.clone();
        match self.kind {
            FirewallFaultKind::Rejected => FirewallError::Rejected(msg),
            FirewallFaultKind::Unavailable => FirewallError::Unavailable(msg.into()),
            FirewallFaultKind::Invalid => FirewallError::Invalid(msg),
            FirewallFaultKind::Backend => FirewallError::Backend(msg.into()),
        }
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallCall {
    /// `ensure_base()`.
    EnsureBase,
    /// `allow(sandbox)`.
    Allow(SandboxNet),
    /// `remove(vmid)`.
    Remove(Vmid),
    /// `describe()`.
    Describe,
}

impl FirewallCall {
    /// The operation.
    pub fn op(&self) -> FirewallOp {
        match self {
            Self::EnsureBase => FirewallOp::EnsureBase,
            Self::Allow(_) => FirewallOp::Allow,
            Self::Remove(_) => FirewallOp::Remove,
            Self::Describe => FirewallOp::Describe,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    base_applied: bool,
    sandboxes: BTreeMap<Vmid, SandboxNet>,
    calls: Vec<FirewallCall>,
    faults: FaultPlan<FirewallOp, FirewallFault>,
    /// Set by [`FakeFirewall::tamper`]: the policy was changed behind the engine's back.
    tampered: bool,
}

/// In-memory [`Firewall`]; see the [module docs](self).
#[derive(Debug, Default)]
pub struct FakeFirewall {
    inner: Mutex<Inner>,
}

/// Whether `mac` is six colon-separated hex octets.
fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl FakeFirewall {
    /// An empty firewall: no base policy, no sandboxes, no faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a fault for the next call of `op`.
    pub fn fail_once(&self, op: FirewallOp, fault: FirewallFault) {
        self.lock().faults.once(op, fault);
    }

    /// Makes every call of `op` fail (after queued one-shot faults) until cleared.
    pub fn fail_always(&self, op: FirewallOp, fault: FirewallFault) {
        self.lock().faults.always(op, fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FirewallCall> {
        self.lock().calls.clone()
    }

    /// Forgets the call log.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The current state (same as `describe`, without recording a call).
    pub fn state(&self) -> FirewallState {
        let inner = self.lock();
        FirewallState {
            base_applied: inner.base_applied,
            sandboxes: inner.sandboxes.values().cloned().collect(),
        }
    }

    /// Whether `vmid` is currently allowed.
    pub fn is_allowed(&self, vmid: Vmid) -> bool {
        self.lock().sandboxes.contains_key(&vmid)
    }

    /// Simulates someone else changing the live policy (as `nft delete table` would): the
    /// base and all sandboxes are gone until [`Firewall::enforce`] puts them back.
    pub fn tamper(&self) {
        let mut inner = self.lock();
        inner.tampered = true;
        inner.base_applied = false;
    }

    /// Records the call and returns the guard, or the injected fault.
    fn enter(&self, call: FirewallCall) -> Result<MutexGuard<'_, Inner>, FirewallError> {
        let op = call.op();
        debug!(op = ?op, "fake firewall call");
        let mut inner = self.lock();
        inner.calls.push(call);
        match inner.faults.take(&op) {
            Some(fault) => Err(fault.to_error()),
            None => Ok(inner),
        }
    }
}

#[async_trait]
impl Firewall for FakeFirewall {
    async fn ensure_base(&self) -> Result<(), FirewallError> {
        self.enter(FirewallCall::EnsureBase)?.base_applied = true;
        Ok(())
    }

    async fn allow(&self, sandbox: &SandboxNet) -> Result<(), FirewallError> {
        let mut inner = self.enter(FirewallCall::Allow(sandbox.clone()))?;
        if !inner.base_applied {
            return Err(FirewallError::Rejected(
                "base policy is not in place".to_owned(),
            ));
        }
        if !valid_mac(&sandbox.mac) {
            return Err(FirewallError::Invalid(format!(
                "MAC address {:?}",
                sandbox.mac
            )));
        }
        if sandbox.iface.is_empty() {
            return Err(FirewallError::Invalid("empty interface name".to_owned()));
        }
        inner.sandboxes.insert(sandbox.vmid, sandbox.clone());
        Ok(())
    }

    async fn remove(&self, vmid: Vmid) -> Result<(), FirewallError> {
        self.enter(FirewallCall::Remove(vmid))?
            .sandboxes
            .remove(&vmid);
        Ok(())
    }

    async fn describe(&self) -> Result<FirewallState, FirewallError> {
        drop(self.enter(FirewallCall::Describe)?);
        let mut state = self.state();
        if self.lock().tampered {
            state.sandboxes.clear();
        }
        Ok(state)
    }

    async fn enforce(&self) -> Result<bool, FirewallError> {
        let mut inner = self.lock();
        let repaired = std::mem::take(&mut inner.tampered);
        if repaired {
            inner.base_applied = true;
        }
        Ok(repaired)
    }
}
