//! `agentlab sandbox new`: request a sandbox and optionally wait (`--wait`) until it is READY
//! or has failed, showing provisioning progress from the sandbox's event stream.

use agentlab_core::api::control::CreateSandboxRequest;
use agentlab_core::{Event, EventKind, Sandbox, SandboxState, Vmid};

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::{event_line, print_json};
use agentlab_client::with_query;

/// Arguments of `agentlab sandbox new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Profile to create the sandbox from.
    #[arg(long, short)]
    pub profile: String,
    /// Sandbox name (default `agentlab-<vmid>`).
    #[arg(long)]
    pub name: Option<String>,
    /// Lease length in minutes (profile default when absent).
    #[arg(long, value_name = "MINUTES")]
    pub ttl: Option<u32>,
    /// Keep the sandbox until its lease ends, with a renewable lease.
    #[arg(long)]
    pub keepalive: bool,
    /// Workspace (id or name) to attach.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Wait until the sandbox is READY (exit 0) or FAILED (exit 1), showing progress.
    #[arg(long)]
    pub wait: bool,
}

impl NewArgs {
    /// The request body.
    pub fn request(&self) -> CreateSandboxRequest {
        CreateSandboxRequest {
            profile: self.profile.clone(),
            name: self.name.clone(),
            ttl_minutes: self.ttl,
            keepalive: self.keepalive.then_some(true),
            workspace: self.workspace.clone(),
        }
    }
}

/// Runs `agentlab sandbox new`.
pub async fn run(ctx: &Ctx, args: NewArgs) -> anyhow::Result<Code> {
    let sandbox: Sandbox = ctx.client.create_sandbox(&args.request()).await?;
    if !args.wait {
        if ctx.json {
            print_json(&sandbox)?;
        } else {
            println!(
                "Sandbox {} ({}) requested from profile {}.",
                sandbox.vmid, sandbox.name, sandbox.profile
            );
            println!(
                "Watch it with `agentlab logs {} --follow` or `agentlab sandbox show {}`.",
                sandbox.vmid, sandbox.vmid
            );
        }
        return Ok(Code::Ok);
    }
    if !ctx.json {
        eprintln!(
            "Sandbox {} requested; waiting for it to become READY…",
            sandbox.vmid
        );
    }
    let sandbox = wait_settled(ctx, sandbox.vmid, !ctx.json).await?;
    if ctx.json {
        print_json(&sandbox)?;
    } else {
        print!(
            "{}",
            crate::view::sandbox_detail(&sandbox, &chrono::Utc::now())
        );
    }
    Ok(Code::for_sandbox(sandbox.state))
}

/// Follows the sandbox's events until it leaves the provisioning states; prints each event on
/// stderr when `show`. When the daemon moves the request to a new id (the first id turned out
/// to be taken outside AgentLab: an event with `payload.replaced_by`), follows the new sandbox.
pub async fn wait_settled(ctx: &Ctx, vmid: Vmid, show: bool) -> anyhow::Result<Sandbox> {
    let mut vmid = vmid;
    'follow: loop {
        let sandbox_path = format!("/v1/sandboxes/{vmid}");
        let events = with_query(
            &format!("{sandbox_path}/events"),
            &[("follow", Some("true".into()))],
        );
        let mut stream = ctx.client.stream_lines(&events).await?;
        while let Some(event) = stream.next_json::<Event>().await? {
            if show {
                eprintln!("{}", event_line(&event));
            }
            if let Some(next) = replaced_by(&event) {
                if show {
                    eprintln!("Following sandbox {next}, which replaces {vmid}.");
                }
                vmid = next;
                continue 'follow;
            }
            if changes_state(event.kind) {
                let sandbox: Sandbox = ctx.client.get(&sandbox_path).await?;
                if is_settled(sandbox.state) {
                    return Ok(sandbox);
                }
            }
        }
        return Ok(ctx.client.get(&sandbox_path).await?);
    }
}

/// The sandbox that continues this one's request, from an event's `payload.replaced_by`.
pub fn replaced_by(event: &Event) -> Option<Vmid> {
    let id = event.payload.get("replaced_by")?.as_u64()?;
    Vmid::new(u32::try_from(id).ok()?).ok()
}

/// Events after which the sandbox's state is worth re-reading.
pub fn changes_state(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::StateChanged
            | EventKind::ProvisionFailed
            | EventKind::SandboxAction
            | EventKind::Reconciled
            | EventKind::LeaseExpired
            | EventKind::SandboxLost
    )
}

/// Whether provisioning is over (successfully or not).
pub fn is_settled(state: SandboxState) -> bool {
    !matches!(
        state,
        SandboxState::Requested | SandboxState::Provisioning | SandboxState::Booting
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_stops_once_provisioning_is_over() {
        assert!(!is_settled(SandboxState::Requested));
        assert!(!is_settled(SandboxState::Booting));
        assert!(is_settled(SandboxState::Ready));
        assert!(is_settled(SandboxState::Failed));
        assert!(changes_state(EventKind::StateChanged));
        assert!(changes_state(EventKind::ProvisionFailed));
        assert!(!changes_state(EventKind::ProvisionStep));
    }

    #[tokio::test]
    async fn wait_follows_the_sandbox_that_replaces_a_taken_id() {
        use crate::test_server::fixtures::{event_line, sandbox};
        use crate::test_server::{Canned, CannedCtx, Reply};

        let mut moved: Event = serde_json::from_str(&event_line(
            2,
            EventKind::SandboxRequested,
            "VM id 101 is taken outside AgentLab; continuing as sandbox 102",
        ))
        .unwrap();
        moved.payload = serde_json::json!({"replaced_by": 102});
        let old_stream = [
            serde_json::to_string(&moved).unwrap() + "\n",
            event_line(3, EventKind::StateChanged, "DESTROYED"),
        ]
        .concat();
        let new_stream = event_line(4, EventKind::StateChanged, "READY");
        let mut ready = sandbox(SandboxState::Ready, None);
        ready.vmid = Vmid::new(102).unwrap();
        let srv = Canned::start(vec![
            (
                "GET /v1/sandboxes/101/events?follow=true",
                Reply::raw(old_stream, vec![]),
            ),
            (
                "GET /v1/sandboxes/102/events?follow=true",
                Reply::raw(new_stream, vec![]),
            ),
            ("GET /v1/sandboxes/102", Reply::json(200, &ready)),
        ])
        .await;
        let got = wait_settled(&srv.ctx(true), Vmid::new(101).unwrap(), false)
            .await
            .unwrap();
        assert_eq!(got.vmid.get(), 102);
        assert_eq!(Code::for_sandbox(got.state), Code::Ok);
        let seen = srv.requests.lock().unwrap().clone();
        assert!(
            !seen.contains(&"GET /v1/sandboxes/101".to_owned()),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn wait_stops_at_the_first_settled_state() {
        use crate::test_server::fixtures::{event_line, sandbox};
        use crate::test_server::{Canned, CannedCtx, Reply};

        let stream = [
            event_line(1, EventKind::ProvisionStep, "clone ok"),
            event_line(2, EventKind::ProvisionFailed, "configure failed: boom"),
        ]
        .concat();
        let failed = sandbox(SandboxState::Failed, Some("configure failed: boom"));
        let srv = Canned::start(vec![
            (
                "GET /v1/sandboxes/101/events?follow=true",
                Reply::raw(stream, vec![]),
            ),
            ("GET /v1/sandboxes/101", Reply::json(200, &failed)),
        ])
        .await;
        let got = wait_settled(&srv.ctx(true), failed.vmid, false)
            .await
            .unwrap();
        assert_eq!(got.last_error.as_deref(), Some("configure failed: boom"));
        assert_eq!(Code::for_sandbox(got.state), Code::Failure);
        let seen = srv.requests.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                "GET /v1/sandboxes/101/events?follow=true",
                "GET /v1/sandboxes/101"
            ]
        );
    }
}
