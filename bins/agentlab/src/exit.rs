//! Exit codes: one place maps outcomes and errors to the process status documented in
//! `docs/cli.md`.

use std::process::ExitCode;

use agentlab_core::{JobState, SandboxState};

use agentlab_client::ClientError;

/// The process exit status of an `agentlab` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 0: success (the job COMPLETED, the sandbox became READY, …).
    Ok,
    /// 1: an error, or the job/sandbox FAILED.
    Failure,
    /// 2: bad command line (clap exits with it itself).
    Usage,
    /// 3: the job or sandbox hit its deadline (TIMEOUT).
    Timeout,
    /// 4: the job was cancelled.
    Cancelled,
    /// 69 (`EX_UNAVAILABLE`): agentlabd could not be reached.
    Unavailable,
    /// A command's own exit code (`sandbox exec`, `sandbox shell`).
    Remote(u8),
}

impl Code {
    /// The numeric status.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failure => 1,
            Self::Usage => 2,
            Self::Timeout => 3,
            Self::Cancelled => 4,
            Self::Unavailable => 69,
            Self::Remote(c) => c,
        }
    }

    /// The status for a job that ended (or is still running, which counts as success for
    /// commands that do not wait).
    pub fn for_job(state: JobState) -> Self {
        match state {
            JobState::Queued | JobState::Running | JobState::Completed => Self::Ok,
            JobState::Failed => Self::Failure,
            JobState::Timeout => Self::Timeout,
            JobState::Cancelled => Self::Cancelled,
        }
    }

    /// The status after waiting for a sandbox to settle.
    pub fn for_sandbox(state: SandboxState) -> Self {
        match state {
            SandboxState::Failed | SandboxState::Lost | SandboxState::Destroyed => Self::Failure,
            SandboxState::Timeout => Self::Timeout,
            _ => Self::Ok,
        }
    }

    /// The status for an error: 69 when the daemon is unreachable, else 1.
    pub fn for_error(err: &anyhow::Error) -> Self {
        let unreachable = err.chain().any(|e| {
            matches!(
                e.downcast_ref::<ClientError>(),
                Some(ClientError::Unreachable { .. })
            )
        });
        if unreachable {
            Self::Unavailable
        } else {
            Self::Failure
        }
    }
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> Self {
        ExitCode::from(code.as_u8())
    }
}

#[cfg(test)]
mod tests {

    use anyhow::Context;

    use super::*;
    use agentlab_client::ApiError;

    #[test]
    fn job_states_map_to_documented_codes() {
        assert_eq!(Code::for_job(JobState::Completed).as_u8(), 0);
        assert_eq!(Code::for_job(JobState::Failed).as_u8(), 1);
        assert_eq!(Code::for_job(JobState::Timeout).as_u8(), 3);
        assert_eq!(Code::for_job(JobState::Cancelled).as_u8(), 4);
        assert_eq!(Code::Usage.as_u8(), 2);
    }

    #[test]
    fn sandbox_states_map_to_codes() {
        assert_eq!(Code::for_sandbox(SandboxState::Ready), Code::Ok);
        assert_eq!(Code::for_sandbox(SandboxState::Failed), Code::Failure);
        assert_eq!(Code::for_sandbox(SandboxState::Timeout), Code::Timeout);
    }

    #[test]
    fn unreachable_daemon_is_69_even_under_context() {
        let err = anyhow::Error::new(ClientError::Unreachable {
            target: "/nope.sock".into(),
            reason: "no socket file there".into(),
        });
        assert_eq!(Code::for_error(&err).as_u8(), 69);
        let wrapped: anyhow::Result<()> = Err(err).context("Cannot list sandboxes");
        assert_eq!(Code::for_error(&wrapped.unwrap_err()), Code::Unavailable);
    }

    #[test]
    fn api_errors_are_failures() {
        let api = ApiError {
            status: 404,
            code: "sandbox_not_found".into(),
            message: "Sandbox 101 not found".into(),
            details: serde_json::Value::Null,
        };
        let err = anyhow::Error::new(ClientError::Api(api));
        assert_eq!(Code::for_error(&err), Code::Failure);
        assert_eq!(
            format!("{err:#}"),
            "Sandbox 101 not found (sandbox_not_found)"
        );
    }
}
