//! Embedding AgentLab's engine in your own program, here with the in-memory fakes.
//!
//! Creates a sandbox, runs a job, plays the guest (fetch bootstrap, report progress and the
//! result), and prints the events. Swap the fakes for `ProxmoxHypervisor`, `NftFirewall`,
//! `AgeSecretStore` and `SqliteStore` to drive real infrastructure.
//!
//! Run: `cargo run -p agentlab-examples --example embed_fakes`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentlab_core::engine::{GuestReport, JobRequest, Lab, LabDeps, LabSettings};
use agentlab_core::fake::boot::{BootEvent, BootHook, BootHookError};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::profile::Profiles;
use agentlab_core::{EventQuery, JobOutcome, JobState, Vmid};

/// Captures the bootstrap token the engine hands to the "VM".
#[derive(Debug, Default)]
struct Guest(Mutex<Option<(Vmid, String)>>);

impl BootHook for Guest {
    fn on_start(&self, ev: &BootEvent) -> Result<(), BootHookError> {
        if let Some(b) = &ev.bootstrap {
            *self
                .0
                .lock()
                .map_err(|e| BootHookError::Other(e.to_string()))? =
                Some((ev.vmid, b.token.expose().to_owned()));
        }
        Ok(())
    }
    fn on_stop(&self, _vmid: Vmid, _grace: Duration) {}
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let hv = Arc::new(FakeHypervisor::new());
    let guest = Arc::new(Guest::default());
    hv.set_boot_hook(guest.clone());
    let deps = LabDeps {
        hypervisor: hv,
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store: Arc::new(MemoryStore::new()),
        clock: Arc::new(ManualClock::at_epoch()),
    };
    let profiles =
        Profiles::from_yaml_str(include_str!("../profiles/defaults.yaml"), "defaults.yaml")?;
    let settings = LabSettings {
        guest_poll_interval: Duration::from_millis(1),
        ..LabSettings::default()
    };
    let lab = Lab::new(deps, settings, profiles);
    lab.reconcile().await?;

    let job = lab
        .run_job(JobRequest {
            repo: "https://example.invalid/repo.git".into(),
            task: "add a README".into(),
            profile: "yolo-ephemeral".into(),
            ..JobRequest::default()
        })
        .await?;
    lab.wait_idle().await;

    let (vmid, token) = guest
        .0
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .clone()
        .ok_or_else(|| anyhow::anyhow!("VM never started"))?;
    let grant = lab.bootstrap_fetch(vmid, &token).await?;
    let rt = grant.runner_token.expose().to_owned();
    let running = GuestReport {
        state: JobState::Running,
        step: Some("agent".into()),
        outcome: JobOutcome::default(),
        pushed: None,
    };
    lab.report_status(&job.id, &rt, running).await?;
    lab.append_logs(&job.id, &rt, vec!["hello from the agent".into()])
        .await?;
    let done = GuestReport {
        state: JobState::Completed,
        step: None,
        outcome: JobOutcome {
            exit_code: Some(0),
            ..JobOutcome::default()
        },
        pushed: None,
    };
    lab.report_status(&job.id, &rt, done).await?;
    lab.wait_idle().await;

    for ev in lab
        .events(&EventQuery {
            job: Some(job.id.clone()),
            ..EventQuery::default()
        })
        .await?
    {
        println!("{:>4} {:<18} {}", ev.id, ev.kind.as_str(), ev.message);
    }
    println!(
        "job {} is {}; sandbox {vmid} is {}",
        job.id,
        lab.job(&job.id).await?.state,
        lab.sandbox(vmid).await?.state
    );
    lab.shutdown().await;
    Ok(())
}
