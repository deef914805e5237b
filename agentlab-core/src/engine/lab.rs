//! [`Lab`]: the orchestration engine's entry type, its settings and shared helpers.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::error::EngineError;
use crate::event::{EventKind, NewEvent};
use crate::firewall::Firewall;
use crate::hypervisor::Hypervisor;
use crate::ids::{JobId, Vmid};
use crate::model::{Job, Sandbox};
use crate::profile::Profiles;
use crate::secrets::SecretStore;
use crate::state::{JobState, SandboxState};
use crate::store::StateStore;
use crate::time::Clock;

/// Engine settings (the daemon derives them from its config).
#[derive(Debug, Clone)]
pub struct LabSettings {
    /// VM ids the allocator may use.
    pub vmid_start: u32,
    /// Last usable VM id (inclusive).
    pub vmid_end: u32,
    /// Agent subnet base address; sandbox `vmid` gets `base + 2 + (vmid - vmid_start)`.
    pub subnet_base: Ipv4Addr,
    /// Agent subnet prefix length.
    pub subnet_prefix: u8,
    /// Host address on the agent bridge.
    pub gateway: Ipv4Addr,
    /// Base URL of the guest listener as seen from guests.
    pub controller_url: String,
    /// Bootstrap token lifetime.
    pub token_ttl: Duration,
    /// How long BOOTING may wait for the guest address.
    pub boot_timeout: Duration,
    /// Interval between guest address polls.
    pub guest_poll_interval: Duration,
    /// Graceful shutdown time before a forced stop.
    pub shutdown_grace: Duration,
    /// After a job TIMEOUT, how long to wait for the final report and artifacts.
    pub report_grace: Duration,
    /// Keep at most this many log lines per job.
    pub job_log_max_lines: u32,
    /// Drive the firewall (allow/remove per sandbox).
    pub manage_firewall: bool,
    /// How long a destroyed sandbox's vmid (and so its IP and MAC) rests before it is handed
    /// out again (default 60 s).
    pub vmid_quarantine: Duration,
    /// Accept a bootstrap fetch only from the sandbox's own address (its `ip`). Off where
    /// guests reach the listener from the host itself (a loopback listener: fake backend,
    /// simulator), on otherwise.
    pub bind_bootstrap_address: bool,
    /// Wait before the first retry of a failed destroy; doubles per attempt.
    pub destroy_retry_min: Duration,
    /// Longest wait between destroy retries.
    pub destroy_retry_max: Duration,
    /// How often `tick` asks a multi-node backend for node health (sandboxes on an offline
    /// node become LOST; default 5 s).
    pub node_check_interval: Duration,
    /// Secret the sandboxes' channel keys are derived from ([`crate::channel_key`]); `None`
    /// gives guests no channel key (no exec, shell, copy or forward).
    pub channel_secret: Option<crate::channel_key::ChannelSecret>,
    /// How long a FAILED sandbox with nothing left on the backend (no VM, its teardown done)
    /// stays FAILED for inspection before it is destroyed, instead of holding its lease
    /// (default 10 minutes).
    pub failed_keep: Duration,
    /// SSH public keys every sandbox's agent user accepts (the daemon config's
    /// `ssh_public_keys`; a profile's are added to them), already validated.
    pub ssh_public_keys: Vec<String>,
    /// Sandbox and artifact quotas (the daemon config's `quotas:`; default: no limits).
    pub quotas: crate::config::QuotasConfig,
}

impl Default for LabSettings {
    fn default() -> Self {
        Self {
            vmid_start: 9100,
            vmid_end: 9999,
            subnet_base: Ipv4Addr::new(10, 77, 0, 0),
            subnet_prefix: 16,
            gateway: Ipv4Addr::new(10, 77, 0, 1),
            controller_url: "http://10.77.0.1:8844".into(),
            token_ttl: Duration::from_secs(600),
            boot_timeout: Duration::from_secs(300),
            guest_poll_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            report_grace: Duration::from_secs(120),
            job_log_max_lines: 20_000,
            manage_firewall: true,
            vmid_quarantine: Duration::from_secs(60),
            bind_bootstrap_address: true,
            destroy_retry_min: Duration::from_secs(2),
            destroy_retry_max: Duration::from_secs(300),
            node_check_interval: Duration::from_secs(5),
            channel_secret: None,
            failed_keep: Duration::from_secs(600),
            ssh_public_keys: Vec::new(),
            quotas: crate::config::QuotasConfig::default(),
        }
    }
}

/// The backends a [`Lab`] drives.
#[derive(Debug, Clone)]
pub struct LabDeps {
    /// VM backend.
    pub hypervisor: Arc<dyn Hypervisor>,
    /// Network policy.
    pub firewall: Arc<dyn Firewall>,
    /// Secret bundles.
    pub secrets: Arc<dyn SecretStore>,
    /// Durable state.
    pub store: Arc<dyn StateStore>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
}

/// The orchestration engine. Cheap to share (`Arc<Lab>`); every method is safe to call
/// concurrently. Background work (provisioning, teardown) runs on tasks tracked by the lab and
/// cancelled by [`Lab::shutdown`].
#[derive(Debug)]
pub struct Lab {
    pub(crate) deps: LabDeps,
    pub(crate) settings: LabSettings,
    pub(crate) profile_set: crate::engine::profile_set::ProfileSet,
    pub(crate) locks: Mutex<HashMap<Vmid, Arc<tokio::sync::Mutex<()>>>>,
    /// Sandboxes whose provisioning or boot task runs in this process (reconcile leaves them
    /// alone).
    pub(crate) inflight: Mutex<std::collections::HashSet<Vmid>>,
    /// Set once this process installed the firewall base policy (before any sandbox's rules).
    pub(crate) fw_base: tokio::sync::OnceCell<()>,
    /// Destroys that have begun: attempts made by this process and when the next is due.
    pub(crate) destroys: Mutex<HashMap<Vmid, crate::engine::destroy::DestroyRetry>>,
    pub(crate) alloc_lock: tokio::sync::Mutex<()>,
    /// When `tick` last asked the backend for node health.
    pub(crate) node_checked: Mutex<Option<crate::time::Timestamp>>,
    pub(crate) tasks: TaskTracker,
    pub(crate) cancel: CancellationToken,
    /// Announces sandboxes whose guest is gone ([`Lab::subscribe_released`]).
    pub(crate) released: tokio::sync::broadcast::Sender<crate::engine::Released>,
    /// The store as given, wrapped: announces writes to [`Lab::subscribe_changes`].
    pub(crate) notifier: Arc<crate::engine::notify::NotifyingStore>,
    /// What idle stop measures (streams, log output, guest CPU).
    pub(crate) activity: crate::engine::activity::Activity,
}

impl Lab {
    /// Builds a lab. Call [`Lab::reconcile`] once before serving requests.
    pub fn new(mut deps: LabDeps, settings: LabSettings, profiles: Profiles) -> Arc<Self> {
        let notifier = Arc::new(crate::engine::notify::NotifyingStore::new(deps.store));
        deps.store = Arc::clone(&notifier) as Arc<dyn StateStore>;
        let activity = crate::engine::activity::Activity::new(deps.clock.now());
        Arc::new(Self {
            activity,
            notifier,
            deps,
            settings,
            profile_set: crate::engine::profile_set::ProfileSet::new(profiles),
            locks: Mutex::new(HashMap::new()),
            inflight: Mutex::new(std::collections::HashSet::new()),
            destroys: Mutex::new(HashMap::new()),
            fw_base: tokio::sync::OnceCell::new(),
            alloc_lock: tokio::sync::Mutex::new(()),
            node_checked: Mutex::new(None),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            released: crate::engine::released::channel(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &LabSettings {
        &self.settings
    }

    /// The backends. `store` is the given store wrapped so that its writes are announced
    /// to [`Lab::subscribe_changes`].
    pub fn deps(&self) -> &LabDeps {
        &self.deps
    }

    /// Every store write made through this lab from now on (appended events, job and
    /// sandbox writes), for followers that wake on changes instead of polling.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<crate::engine::Change> {
        self.notifier.subscribe()
    }

    /// How many sandbox writes this lab has made so far. Caches of backend figures (free
    /// memory, running VMs) compare it to know they are stale before their time is up.
    pub fn sandbox_writes(&self) -> u64 {
        self.notifier.sandbox_writes()
    }

    /// Stops accepting background work, cancels what runs (it parks safely: a restart's
    /// [`Lab::reconcile`] resumes or cleans up) and waits for the tasks to end.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Waits until every background task started so far has finished (for tests and tools).
    pub async fn wait_idle(&self) {
        loop {
            if self.tasks.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Installs the firewall base policy once per process; sandbox rules wait for it (the
    /// base replaces AgentLab's whole table, so it must come first).
    pub(crate) async fn firewall_base(&self) -> Result<(), EngineError> {
        self.fw_base
            .get_or_try_init(|| self.restore_firewall())
            .await
            .map(|_| ())
    }

    /// The per-sandbox operation lock: every step that changes a sandbox runs under it.
    pub(crate) fn lock_for(&self, vmid: Vmid) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(vmid).or_default().clone()
    }

    pub(crate) async fn event(&self, ev: NewEvent) {
        if let Err(e) = self.deps.store.append_event(ev).await {
            tracing::error!(error = %crate::engine::error::chain(&e), "failed to record event");
        }
    }

    pub(crate) fn now(&self) -> crate::time::Timestamp {
        self.deps.clock.now()
    }

    /// Moves a sandbox to `next` with compare-and-set, recording a `state_changed` event.
    pub(crate) async fn transition(
        &self,
        sb: &mut Sandbox,
        next: SandboxState,
        why: &str,
    ) -> Result<(), EngineError> {
        let from = sb.state;
        let mut updated = sb.clone();
        updated.state = next;
        updated.updated_at = self.now();
        self.deps.store.update_sandbox(&updated, from).await?;
        *sb = updated;
        self.announce_released(sb);
        let msg = if why.is_empty() {
            format!("{from} -> {next}")
        } else {
            format!("{from} -> {next}: {why}")
        };
        tracing::info!(sandbox = %sb.vmid, from = %from, to = %next, "sandbox state changed");
        self.event(
            NewEvent::new(self.now(), EventKind::StateChanged, msg)
                .sandbox(sb.vmid)
                .job(sb.job.clone())
                .payload(serde_json::json!({"from": from, "to": next})),
        )
        .await;
        Ok(())
    }

    /// Saves non-state fields of a sandbox (compare-and-set on its current state).
    pub(crate) async fn save(&self, sb: &mut Sandbox) -> Result<(), EngineError> {
        sb.updated_at = self.now();
        self.deps.store.update_sandbox(sb, sb.state).await?;
        Ok(())
    }

    /// Moves a job to `next` (compare-and-set), stamping `ended_at` for terminal states.
    pub(crate) async fn job_transition(
        &self,
        job: &mut Job,
        next: JobState,
    ) -> Result<(), EngineError> {
        let from = job.state;
        let mut updated = job.clone();
        updated.state = next;
        updated.updated_at = self.now();
        if next.is_terminal() {
            updated.ended_at = Some(self.now());
        }
        self.deps.store.update_job(&updated, from).await?;
        *job = updated;
        Ok(())
    }

    /// Reads a job.
    pub async fn job(&self, id: &JobId) -> Result<Job, EngineError> {
        Ok(self.deps.store.get_job(id).await?)
    }

    /// Reads a sandbox.
    pub async fn sandbox(&self, vmid: Vmid) -> Result<Sandbox, EngineError> {
        Ok(self.deps.store.get_sandbox(vmid).await?)
    }

    /// When this process last saw the sandbox active (what idle stop measures), if ever.
    pub fn last_activity(&self, vmid: Vmid) -> Option<crate::time::Timestamp> {
        self.activity.last_active(vmid)
    }

    /// What a sandbox's VM process uses on the host, when the backend reports it and the
    /// sandbox runs; a backend error is logged and reads as `None` (it is only a display).
    pub async fn sandbox_usage(&self, vmid: Vmid) -> Option<crate::hypervisor::VmUsage> {
        let usage = self.deps.hypervisor.process_usage()?;
        match usage.usage(vmid).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(sandbox = %vmid, error = %e, "no process usage");
                None
            }
        }
    }
}
