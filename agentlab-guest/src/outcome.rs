//! The job's outcome: the final [`StatusReport`] (state, exit code, failed step, redacted
//! error), the checkout's commit and summary, `changes.patch` and `report.json`.

use std::path::Path;

use agentlab_core::api::guest::{GuestJobSpec, GuestJobState, StatusReport};
use agentlab_core::redact::Redactor;
use serde::Serialize;

use crate::error::GuestError;
use crate::git::Git;
use crate::logs::LogHandle;
use crate::process::{self, ProcessEnd};
use crate::steps::step_of;

/// `report.json` in the artifact bundle.
#[derive(Debug, Serialize)]
struct RunReport<'a> {
    job_id: &'a str,
    work_branch: &'a str,
    base_commit: Option<&'a str>,
    #[serde(flatten)]
    status: &'a StatusReport,
}

/// The final report for how the steps ended (commit and summary are added later).
pub(crate) fn verdict(
    result: Result<ProcessEnd, GuestError>,
    timeout_secs: u64,
    redactor: &Redactor,
) -> StatusReport {
    let failed = |state, step: &str, exit_code, error: String| StatusReport {
        exit_code,
        failed_step: Some(step.to_owned()),
        error: Some(error),
        ..StatusReport::new(state)
    };
    match result {
        Ok(ProcessEnd::Exited(0)) => StatusReport {
            exit_code: Some(0),
            ..StatusReport::new(GuestJobState::Completed)
        },
        Ok(ProcessEnd::TimedOut) => failed(
            GuestJobState::Timeout,
            "agent",
            Some(process::TIMEOUT_EXIT_CODE),
            format!(
                "Agent ran past the job's deadline (the job timeout counts from submission; \
                 {timeout_secs} s of it were left when the agent started)"
            ),
        ),
        Ok(ProcessEnd::Cancelled) => failed(
            GuestJobState::Failed,
            "agent",
            Some(ProcessEnd::Cancelled.code()),
            "Runner stopped during the agent step".to_owned(),
        ),
        Ok(ProcessEnd::Exited(code)) => failed(
            GuestJobState::Failed,
            "agent",
            Some(code),
            format!("Agent exited with code {code}"),
        ),
        Err(e) => failed(
            GuestJobState::Failed,
            step_of(&e),
            None,
            redactor.redact(&e.to_string()),
        ),
    }
}

/// Adds `commit` and `summary` to `report` and writes `changes.patch` into `work_dir`.
/// Problems are logged, not fatal: the report goes out regardless.
pub(crate) async fn describe_checkout(
    git: &Git,
    base: &str,
    branch: &str,
    work_dir: &Path,
    redactor: &Redactor,
    logs: &LogHandle,
    report: &mut StatusReport,
) {
    match git.outcome(base, branch).await {
        Ok((head, summary)) => {
            report.commit = head;
            report.summary = Some(redactor.redact(&summary));
        }
        Err(e) => {
            logs.runner(&format!("cannot summarize the checkout: {e}"))
                .await;
        }
    }
    match git.patch(base).await {
        Ok(patch) if !patch.is_empty() => {
            if let Err(e) = std::fs::write(work_dir.join("changes.patch"), patch) {
                logs.runner(&format!("cannot write changes.patch: {e}"))
                    .await;
            }
        }
        Ok(_) => {}
        Err(e) => {
            logs.runner(&format!("cannot produce changes.patch: {e}"))
                .await;
        }
    }
}

/// Writes `report.json` (the final report plus job id, work branch and base commit).
pub(crate) fn write_report(
    work_dir: &Path,
    job: &GuestJobSpec,
    base_commit: Option<&str>,
    report: &StatusReport,
) -> std::io::Result<()> {
    let run_report = RunReport {
        job_id: job.job_id.as_str(),
        work_branch: &job.work_branch,
        base_commit,
        status: report,
    };
    let json = serde_json::to_vec_pretty(&run_report).map_err(std::io::Error::other)?;
    std::fs::write(work_dir.join("report.json"), json)
}
