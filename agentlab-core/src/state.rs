//! The sandbox and job state machines.
//!
//! [`SandboxState::can_transition_to`] is the one transition table; every store refuses a write
//! that is not in it, and `docs/ARCHITECTURE.md` reproduces it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Lifecycle state of a sandbox (one VM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SandboxState {
    /// Accepted; provisioning has not started.
    Requested,
    /// Cloning and configuring the VM.
    Provisioning,
    /// Powered on, waiting for the guest.
    Booting,
    /// Guest up, no job running.
    Ready,
    /// A job runs in the guest.
    Running,
    /// Paused by the user or the idle policy; the VM keeps its memory.
    Suspended,
    /// The job finished successfully.
    Completed,
    /// Provisioning or the job failed.
    Failed,
    /// The job or the boot exceeded its deadline.
    Timeout,
    /// Powered off; can be started again.
    Stopped,
    /// The hypervisor node holding the VM went offline: the sandbox is gone for its job (which
    /// failed with that cause); when the node returns its VM is destroyed (DESTROYING, then
    /// DESTROYED). Nothing else follows.
    Lost,
    /// Destruction has begun and is persisted: the daemon (and a restarted daemon) retries
    /// until everything AgentLab created is gone, then DESTROYED. Nothing else follows.
    Destroying,
    /// The VM is gone. Terminal.
    Destroyed,
}

impl SandboxState {
    /// Every state, in lifecycle order.
    pub const ALL: [SandboxState; 13] = [
        Self::Requested,
        Self::Provisioning,
        Self::Booting,
        Self::Ready,
        Self::Running,
        Self::Suspended,
        Self::Completed,
        Self::Failed,
        Self::Timeout,
        Self::Stopped,
        Self::Lost,
        Self::Destroying,
        Self::Destroyed,
    ];

    /// Whether the state machine allows `self → next`. Staying in the same state is not a
    /// transition and is not allowed here. Every live state may go to DESTROYING (a destroy
    /// that has begun) and DESTROYING only to DESTROYED. Every state that may have a VM on a
    /// node may become LOST (its node went offline); LOST only goes on to destruction.
    pub fn can_transition_to(self, next: SandboxState) -> bool {
        use SandboxState::*;
        if next == Destroying {
            return !matches!(self, Destroying | Destroyed);
        }
        if next == Lost {
            return !matches!(self, Requested | Lost | Destroying | Destroyed);
        }
        matches!(
            (self, next),
            (Requested, Provisioning | Failed | Destroyed)
                | (Provisioning, Booting | Failed | Destroyed)
                | (Booting, Ready | Failed | Timeout | Stopped | Destroyed)
                | (
                    Ready,
                    Running | Suspended | Completed | Failed | Timeout | Stopped | Destroyed
                )
                | (
                    Running,
                    Completed | Failed | Timeout | Suspended | Stopped | Destroyed
                )
                | (Suspended, Ready | Running | Stopped | Failed | Destroyed)
                | (Completed, Stopped | Destroyed)
                | (Failed, Stopped | Destroyed)
                | (Timeout, Stopped | Destroyed)
                | (Stopped, Booting | Destroyed)
                | (Lost, Destroyed)
                | (Destroying, Destroyed)
        )
    }

    /// States from which nothing but destruction follows (the VM may still exist).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::Failed
                | Self::Timeout
                | Self::Lost
                | Self::Destroying
                | Self::Destroyed
        )
    }

    /// True only for [`SandboxState::Destroyed`].
    pub fn is_terminal(self) -> bool {
        self == Self::Destroyed
    }

    /// The canonical upper-case name.
    pub fn as_str(self) -> &'static str {
        use SandboxState::*;
        match self {
            Requested => "REQUESTED",
            Provisioning => "PROVISIONING",
            Booting => "BOOTING",
            Ready => "READY",
            Running => "RUNNING",
            Suspended => "SUSPENDED",
            Completed => "COMPLETED",
            Failed => "FAILED",
            Timeout => "TIMEOUT",
            Stopped => "STOPPED",
            Lost => "LOST",
            Destroying => "DESTROYING",
            Destroyed => "DESTROYED",
        }
    }
}

/// Lifecycle state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Created; its sandbox is being provisioned.
    Queued,
    /// The guest reported that the agent runs.
    Running,
    /// The agent exited 0.
    Completed,
    /// Provisioning, clone or the agent failed.
    Failed,
    /// The deadline passed.
    Timeout,
    /// Cancelled by the user.
    Cancelled,
}

impl JobState {
    /// Every state.
    pub const ALL: [JobState; 6] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Timeout,
        Self::Cancelled,
    ];

    /// Whether the job state machine allows `self → next`.
    pub fn can_transition_to(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Queued, Running | Completed | Failed | Timeout | Cancelled)
                | (Running, Completed | Failed | Timeout | Cancelled)
        )
    }

    /// True once the job has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }

    /// The canonical upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Timeout => "TIMEOUT",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// Error for a state name that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unknown state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for SandboxState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

impl fmt::Display for SandboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroyed_is_terminal() {
        for s in SandboxState::ALL {
            assert!(!SandboxState::Destroyed.can_transition_to(s));
        }
    }

    #[test]
    fn every_non_terminal_state_can_be_destroyed() {
        for s in SandboxState::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(s.can_transition_to(SandboxState::Destroyed), "{s}");
        }
    }

    #[test]
    fn a_begun_destroy_only_ends_destroyed() {
        use SandboxState::*;
        for s in SandboxState::ALL {
            assert_eq!(
                s.can_transition_to(Destroying),
                !matches!(s, Destroying | Destroyed),
                "{s}"
            );
            assert_eq!(Destroying.can_transition_to(s), s == Destroyed, "{s}");
        }
        assert!(Destroying.is_finished() && !Destroying.is_terminal());
    }

    #[test]
    fn lost_comes_from_any_state_with_a_vm_and_only_ends_in_destruction() {
        use SandboxState::*;
        for s in SandboxState::ALL {
            assert_eq!(
                s.can_transition_to(Lost),
                !matches!(s, Requested | Lost | Destroying | Destroyed),
                "{s}"
            );
            assert_eq!(
                Lost.can_transition_to(s),
                matches!(s, Destroying | Destroyed),
                "{s}"
            );
        }
        assert!(Lost.is_finished() && !Lost.is_terminal());
    }

    #[test]
    fn no_self_transitions() {
        for s in SandboxState::ALL {
            assert!(!s.can_transition_to(s));
        }
        for s in JobState::ALL {
            assert!(!s.can_transition_to(s));
        }
    }

    #[test]
    fn happy_path_is_allowed() {
        use SandboxState::*;
        let path = [
            Requested,
            Provisioning,
            Booting,
            Ready,
            Running,
            Completed,
            Destroyed,
        ];
        for w in path.windows(2) {
            assert!(w[0].can_transition_to(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(!Requested.can_transition_to(Ready));
        assert!(!Completed.can_transition_to(Running));
    }

    #[test]
    fn names_round_trip() {
        for s in SandboxState::ALL {
            assert_eq!(s.as_str().parse::<SandboxState>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        assert!("nope".parse::<JobState>().is_err());
    }
}
