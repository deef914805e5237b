//! Fault injection for the fakes: the [`FakeOp`] a fault targets, the [`Fault`] it raises and
//! the one-shot/sticky [`FaultPlan`] (shared with [`crate::fake::FakeFirewall`]).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

#[cfg(doc)]
use crate::hypervisor::Hypervisor;
use crate::hypervisor::HypervisorError;

/// One [`Hypervisor`] operation, for latency, faults and the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FakeOp {
    /// [`Hypervisor::create`].
    Create,
    /// [`Hypervisor::configure`].
    Configure,
    /// [`Hypervisor::start`].
    Start,
    /// [`Hypervisor::stop`].
    Stop,
    /// [`Hypervisor::destroy`].
    Destroy,
    /// [`Hypervisor::status`].
    Status,
    /// [`Hypervisor::guest_address`].
    GuestAddress,
    /// [`Hypervisor::list_managed`].
    ListManaged,
    /// [`Hypervisor::used_ids`].
    UsedIds,
    /// [`Hypervisor::create_volume`].
    CreateVolume,
    /// [`Hypervisor::delete_volume`].
    DeleteVolume,
    /// [`Hypervisor::attach_volume`].
    AttachVolume,
    /// [`Hypervisor::detach_volume`].
    DetachVolume,
}

impl FakeOp {
    /// Every operation, in trait order.
    pub const ALL: [FakeOp; 13] = [
        Self::Create,
        Self::Configure,
        Self::Start,
        Self::Stop,
        Self::Destroy,
        Self::Status,
        Self::GuestAddress,
        Self::ListManaged,
        Self::UsedIds,
        Self::CreateVolume,
        Self::DeleteVolume,
        Self::AttachVolume,
        Self::DetachVolume,
    ];

    /// Whether the operation changes state (the ones never allowed on foreign VMs).
    pub fn is_mutating(self) -> bool {
        !matches!(
            self,
            Self::Status | Self::GuestAddress | Self::ListManaged | Self::UsedIds
        )
    }
}

/// Which [`HypervisorError`] variant an injected [`Fault`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// [`HypervisorError::NotFound`].
    NotFound,
    /// [`HypervisorError::AlreadyExists`].
    AlreadyExists,
    /// [`HypervisorError::Conflict`].
    Conflict,
    /// [`HypervisorError::Unavailable`].
    Unavailable,
    /// [`HypervisorError::Timeout`].
    Timeout,
    /// [`HypervisorError::Rejected`].
    Rejected,
    /// [`HypervisorError::Backend`].
    Backend,
}

/// An injected failure: rebuilt into a fresh [`HypervisorError`] each time it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Error variant.
    pub kind: FaultKind,
    /// Message carried by the error.
    pub message: String,
    /// Fire after the operation took effect instead of before.
    pub after_effect: bool,
}

impl Fault {
    /// A fault of `kind` carrying `message`, firing before the operation has any effect.
    pub fn new(kind: FaultKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            after_effect: false,
        }
    }

    /// Makes the fault fire after the operation took effect (e.g. a VM that was created
    /// although `create` reported a timeout).
    #[must_use]
    pub fn after_effect(mut self) -> Self {
        self.after_effect = true;
        self
    }

    /// The error this fault produces.
    pub fn to_error(&self) -> HypervisorError {
        let msg = self.message.clone();
        match self.kind {
            FaultKind::NotFound => HypervisorError::NotFound(msg),
            FaultKind::AlreadyExists => HypervisorError::AlreadyExists(msg),
            FaultKind::Conflict => HypervisorError::Conflict(msg),
            FaultKind::Unavailable => HypervisorError::Unavailable(msg.into()),
            FaultKind::Timeout => HypervisorError::Timeout(msg),
            FaultKind::Rejected => HypervisorError::Rejected { reason: msg },
            FaultKind::Backend => HypervisorError::Backend(msg.into()),
        }
    }
}

/// One-shot and sticky faults per operation (shared by the fakes).
#[derive(Debug)]
pub(crate) struct FaultPlan<O, F> {
    once: HashMap<O, VecDeque<F>>,
    always: HashMap<O, F>,
}

impl<O, F> Default for FaultPlan<O, F> {
    fn default() -> Self {
        Self {
            once: HashMap::new(),
            always: HashMap::new(),
        }
    }
}

impl<O: Eq + Hash, F: Clone> FaultPlan<O, F> {
    /// Queues a one-shot fault.
    pub(crate) fn once(&mut self, op: O, fault: F) {
        self.once.entry(op).or_default().push_back(fault);
    }

    /// Sets a sticky fault.
    pub(crate) fn always(&mut self, op: O, fault: F) {
        self.always.insert(op, fault);
    }

    /// Forgets every fault.
    pub(crate) fn clear(&mut self) {
        self.once.clear();
        self.always.clear();
    }

    /// The fault for this call, if any (consuming a one-shot one).
    pub(crate) fn take(&mut self, op: &O) -> Option<F> {
        if let Some(fault) = self.once.get_mut(op).and_then(VecDeque::pop_front) {
            return Some(fault);
        }
        self.always.get(op).cloned()
    }
}
