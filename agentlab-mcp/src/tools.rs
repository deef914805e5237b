//! The tools: each one translates its input into one or two client calls and renders the
//! answer (see `render`). Every tool returns `Ok`: daemon errors are `isError` results.

use std::time::Duration;

use agentlab_client::SandboxFilter;
use agentlab_core::EventKind;
use agentlab_core::api::control::{CreateSandboxRequest, RunJobRequest};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, RequestMetaObject};
use rmcp::{ErrorData, Peer, RoleServer, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::artifact;
use crate::params::{
    CreateSandboxParams, ExecParams, JobLogsParams, JobParams, ListSandboxesParams,
    ReadArtifactParams, ReadFileParams, RenewLeaseParams, RunJobParams, VmidParams,
    WriteFileParams,
};
use crate::render::{self, client_failure, json};
use crate::sandbox_io;
use crate::server::AgentLabMcp;
use crate::wait::{Progress, Waited, wait_for_job};

/// Lines `job_logs` returns when no `tail` is given.
pub const DEFAULT_TAIL: u32 = 200;

type ToolResult = Result<CallToolResult, ErrorData>;

/// `Ok` of whichever result: tool errors are results too.
fn done(r: Result<CallToolResult, CallToolResult>) -> ToolResult {
    Ok(r.unwrap_or_else(|e| e))
}

/// Runs `work` until it ends or the request is cancelled; cancelled, `work` is dropped, which
/// closes its stream into the sandbox (the sandbox then stops what it ran for it).
async fn cancellable(
    work: impl Future<Output = Result<CallToolResult, CallToolResult>>,
    cancel: CancellationToken,
) -> ToolResult {
    tokio::select! {
        r = work => done(r),
        () = cancel.cancelled() => Ok(render::failure("cancelled", "the request was cancelled")),
    }
}

#[tool_router(vis = "pub(crate)")]
impl AgentLabMcp {
    /// Lists the daemon's profiles.
    #[tool(
        description = "List the profiles agentlabd can create sandboxes and run jobs from (name, template, cores, memory, default lease)."
    )]
    async fn list_profiles(&self) -> ToolResult {
        done(
            self.client
                .list_profiles()
                .await
                .map(|p| json(&p))
                .map_err(|e| client_failure(&e)),
        )
    }

    /// Lists sandboxes.
    #[tool(description = "List sandboxes (DESTROYED ones only with all=true).")]
    async fn list_sandboxes(&self, params: Parameters<ListSandboxesParams>) -> ToolResult {
        let filter = SandboxFilter {
            all: params.0.all,
            ..SandboxFilter::default()
        };
        done(
            self.client
                .list_sandboxes(&filter)
                .await
                .map(|s| json(&s))
                .map_err(|e| client_failure(&e)),
        )
    }

    /// Shows one sandbox.
    #[tool(
        description = "Show one sandbox: state, profile, address, lease, job, last error and (QEMU backend) resource usage."
    )]
    async fn show_sandbox(&self, params: Parameters<VmidParams>) -> ToolResult {
        done(
            async {
                let vmid = render::vmid(params.0.vmid)?;
                let detail = self.client.show_sandbox(vmid).await;
                Ok(json(&detail.map_err(|e| client_failure(&e))?))
            }
            .await,
        )
    }

    /// Requests a sandbox.
    #[tool(
        description = "Create a sandbox from a profile. Returns the REQUESTED sandbox at once; it is provisioned in the background (poll show_sandbox until READY)."
    )]
    async fn create_sandbox(&self, params: Parameters<CreateSandboxParams>) -> ToolResult {
        let p = params.0;
        let req = CreateSandboxRequest {
            profile: p.profile,
            name: p.name,
            ttl_minutes: p.ttl_minutes,
            keepalive: p.keepalive,
            workspace: None,
        };
        done(
            self.client
                .create_sandbox(&req)
                .await
                .map(|s| json(&s))
                .map_err(|e| client_failure(&e)),
        )
    }

    /// Destroys a sandbox.
    #[tool(
        description = "Destroy a sandbox and everything AgentLab created for it. Returns the sandbox: DESTROYED, or DESTROYING with last_error when the attempt failed and agentlabd retries it."
    )]
    async fn destroy_sandbox(&self, params: Parameters<VmidParams>) -> ToolResult {
        done(
            async {
                let vmid = render::vmid(params.0.vmid)?;
                let sandbox = self.client.destroy_sandbox(vmid).await;
                Ok(json(&sandbox.map_err(|e| client_failure(&e))?))
            }
            .await,
        )
    }

    /// Renews a sandbox's lease.
    #[tool(
        description = "Extend a sandbox's lease from now by ttl_minutes (the lease's own length when absent)."
    )]
    async fn renew_lease(&self, params: Parameters<RenewLeaseParams>) -> ToolResult {
        done(
            async {
                let vmid = render::vmid(params.0.vmid)?;
                let sandbox = self.client.renew_lease(vmid, params.0.ttl_minutes).await;
                Ok(json(&sandbox.map_err(|e| client_failure(&e))?))
            }
            .await,
        )
    }

    /// Submits a job, optionally waiting for its end.
    #[tool(
        description = "Run an agent on a repository in a fresh sandbox. Without wait, returns the QUEUED job at once. With wait=true, follows the job until it is COMPLETED, FAILED, TIMEOUT or CANCELLED (or timeout_secs pass) and returns {job, artifacts, finished}; each job event is sent as a progress notification when the request has a progress token."
    )]
    async fn run_job(
        &self,
        params: Parameters<RunJobParams>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        cancel: CancellationToken,
    ) -> ToolResult {
        let p = params.0;
        let req = RunJobRequest {
            repo: p.repo,
            git_ref: p.git_ref,
            task: p.task,
            profile: p.profile,
            agent: None,
            ttl_minutes: None,
            keepalive: None,
            workspace: None,
            result: None,
        };
        let job = match self.client.run_job(&req).await {
            Ok(job) => job,
            Err(e) => return Ok(client_failure(&e)),
        };
        if !p.wait {
            return Ok(json(&job));
        }
        let progress = meta
            .get_progress_token()
            .map(|token| Progress { peer, token });
        let limit = p.timeout_secs.map(Duration::from_secs);
        let (job, finished) =
            match wait_for_job(&self.client, &job.id, progress, limit, cancel).await {
                Ok(Waited::Final(job)) => (job, true),
                Ok(Waited::Stopped(job)) => (job, false),
                Err(e) => return Ok(client_failure(&e)),
            };
        let artifacts = match self.client.list_artifacts(&job.id).await {
            Ok(list) => list,
            Err(e) => return Ok(client_failure(&e)),
        };
        Ok(json(&serde_json::json!({
            "job": job,
            "artifacts": artifacts,
            "finished": finished,
        })))
    }

    /// Shows one job.
    #[tool(
        description = "Show one job: state, step, sandbox, outcome (exit code, commit, error) and timestamps."
    )]
    async fn job_status(&self, params: Parameters<JobParams>) -> ToolResult {
        done(
            async {
                let id = render::job_id(&params.0.job_id)?;
                let job = self.client.show_job(&id).await;
                Ok(json(&job.map_err(|e| client_failure(&e))?))
            }
            .await,
        )
    }

    /// The agent's output of a job.
    #[tool(
        description = "The agent's output of a job (its job_log events, redacted by the runner), the last `tail` lines (default 200), as plain text."
    )]
    async fn job_logs(&self, params: Parameters<JobLogsParams>) -> ToolResult {
        done(
            async {
                let id = render::job_id(&params.0.job_id)?;
                let tail = params.0.tail.unwrap_or(DEFAULT_TAIL) as usize;
                let events = self.client.job_events(&id, None).await;
                let events = events.map_err(|e| client_failure(&e))?;
                let lines: Vec<&str> = events
                    .iter()
                    .filter(|e| e.kind == EventKind::JobLog)
                    .map(|e| e.message.as_str())
                    .collect();
                if lines.is_empty() {
                    return Ok(render::text(format!("Job {id} has no agent output (yet).")));
                }
                Ok(render::text(
                    lines[lines.len().saturating_sub(tail)..].join("\n"),
                ))
            }
            .await,
        )
    }

    /// Lists a job's artifacts.
    #[tool(description = "List a job's artifacts (name, size, sha256, created_at).")]
    async fn list_artifacts(&self, params: Parameters<JobParams>) -> ToolResult {
        done(
            async {
                let id = render::job_id(&params.0.job_id)?;
                let list = self.client.list_artifacts(&id).await;
                Ok(json(&list.map_err(|e| client_failure(&e))?))
            }
            .await,
        )
    }

    /// Reads one artifact.
    #[tool(
        description = "Read one artifact of a job. UTF-8 text up to 256 KiB is returned inline. For a .tar.gz artifact (the job's artifacts.tar.gz bundle: runner.log, report.json, artifacts/...) the answer lists its files; with `path` it returns that file's text. Larger or binary content is described with the `agentlab job artifacts download` command instead."
    )]
    async fn read_artifact(&self, params: Parameters<ReadArtifactParams>) -> ToolResult {
        done(
            async {
                let id = render::job_id(&params.0.job_id)?;
                let p = params.0;
                artifact::read(&self.client, &id, &p.name, p.path).await
            }
            .await,
        )
    }

    /// Runs a command in a sandbox and collects its output.
    #[tool(
        description = "Run a command in a running sandbox (no terminal, no shell: argv is the program and its arguments; use [\"sh\", \"-c\", \"...\"] for pipes). Optional user (agent|root), cwd, env, stdin text and timeout_secs (default 300). Returns {exit_code, signal, timed_out, stdout, stderr, stdout_bytes, stderr_bytes, stdout_truncated, stderr_truncated}; stdout and stderr are each cut at 1 MiB. A non-zero exit code is a normal result."
    )]
    async fn exec(&self, params: Parameters<ExecParams>, cancel: CancellationToken) -> ToolResult {
        cancellable(sandbox_io::exec(&self.client, params.0), cancel).await
    }

    /// Reads a text file in a sandbox.
    #[tool(
        description = "Read a regular file in a running sandbox (absolute path; optional user agent|root). Returns its text, cut at 1 MiB with a note giving the full size; a binary file is described by its size and sha256 instead."
    )]
    async fn read_file(
        &self,
        params: Parameters<ReadFileParams>,
        cancel: CancellationToken,
    ) -> ToolResult {
        let p = params.0;
        let read = sandbox_io::read_file(&self.client, p.vmid, p.path, p.user.into());
        cancellable(read, cancel).await
    }

    /// Writes a text file in a sandbox.
    #[tool(
        description = "Write a file in a running sandbox (absolute path; its content as UTF-8 text; optional user agent|root, who owns it). Missing parent directories are created; an existing file is replaced (mode 0644). Returns {path, bytes, sha256}."
    )]
    async fn write_file(
        &self,
        params: Parameters<WriteFileParams>,
        cancel: CancellationToken,
    ) -> ToolResult {
        let p = params.0;
        let write = async {
            let vmid = render::vmid(p.vmid)?;
            sandbox_io::write_file(&self.client, vmid, p.path, p.content, p.user.into()).await
        };
        cancellable(write, cancel).await
    }
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;
