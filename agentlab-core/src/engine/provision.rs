//! Sandbox creation and the background provisioning task.
//!
//! `create_sandbox` returns the REQUESTED record at once; `provision` then walks
//! PROVISIONING → BOOTING → READY, one step at a time under the sandbox's lock, persisting
//! after each step and recording a `provision_step` event with its duration. Any failure
//! records a `provision_failed` event naming the step, the backend call and the cause chain,
//! tears down what AgentLab created and leaves the sandbox FAILED (TIMEOUT for a boot that
//! never answered). A VM counts as created only after `Hypervisor::create` succeeded.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::engine::alloc::{ip_for, mac_for};
use crate::engine::error::{EngineError, chain};
use crate::engine::lab::Lab;
use crate::engine::spec::vm_spec;
use crate::event::{EventKind, NewEvent};
use crate::hypervisor::{BootstrapData, HypervisorError};
use crate::ids::{JobId, Vmid};
use crate::model::{BootstrapToken, Lease, Sandbox};
use crate::state::SandboxState;
use crate::token::{generate_token, hash_token};

/// What to create (engine-level form of the API request).
#[derive(Debug, Clone, Default)]
pub struct SandboxRequest {
    /// Profile name.
    pub profile: String,
    /// Optional name.
    pub name: Option<String>,
    /// Lease override in minutes.
    pub ttl_minutes: Option<u32>,
    /// Keepalive override.
    pub keepalive: Option<bool>,
    /// Workspace id or name to attach.
    pub workspace: Option<String>,
    /// Job the sandbox is for.
    pub job: Option<JobId>,
}

/// Why provisioning stopped.
pub(crate) struct StepFailure {
    pub step: &'static str,
    pub call: &'static str,
    pub error: EngineError,
    pub final_state: SandboxState,
}

/// How many times a clone answering "already exists" is retried with a new id.
const CLONE_RETRIES: u32 = 5;

impl Lab {
    /// Records a REQUESTED sandbox and starts provisioning it in the background.
    pub async fn create_sandbox(
        self: &Arc<Self>,
        req: SandboxRequest,
    ) -> Result<Sandbox, EngineError> {
        self.create_sandbox_notify(req, None).await
    }

    pub(crate) async fn create_sandbox_notify(
        self: &Arc<Self>,
        req: SandboxRequest,
        done: Option<oneshot::Sender<Result<Vmid, String>>>,
    ) -> Result<Sandbox, EngineError> {
        let profile = self.profile(&req.profile)?;
        let ttl = req
            .ttl_minutes
            .unwrap_or(profile.behavior.ttl_minutes_default);
        if ttl == 0 {
            return Err(EngineError::Invalid(
                "ttl_minutes must be at least 1".into(),
            ));
        }
        let workspace = match &req.workspace {
            Some(w) => {
                let ws = self.deps.store.get_workspace(w).await?;
                if let Some(owner) = ws.attached_to {
                    return Err(EngineError::Conflict(format!(
                        "Workspace {} is attached to sandbox {owner}",
                        ws.name
                    )));
                }
                Some(ws.id)
            }
            None => None,
        };
        let external = self.external_ids().await?;
        let now = self.now();
        let _alloc = self.alloc_lock.lock().await;
        // Counted and inserted under one lock: two creates never both take the last slot.
        self.check_sandbox_quota(&profile.name, req.job.as_ref())
            .await?;
        let vmid = self.allocate_vmid(&[], &external).await?;
        let sb = Sandbox {
            vmid,
            name: req
                .name
                .clone()
                .unwrap_or_else(|| format!("agentlab-{vmid}")),
            profile: profile.name.clone(),
            state: SandboxState::Requested,
            node: None,
            ip: None,
            mac: None,
            iface: None,
            vm_created: false,
            job: req.job.clone(),
            workspace,
            lease: Lease {
                expires_at: now + chrono::Duration::minutes(i64::from(ttl)),
                keepalive: req.keepalive.unwrap_or(profile.behavior.keepalive_default),
                renewable: true,
                ttl_minutes: ttl,
            },
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        // In flight before it is visible: a concurrent reconcile must not take it for a
        // leftover of a previous process.
        self.set_inflight(vmid, true);
        if let Err(e) = self.deps.store.insert_sandbox(&sb).await {
            self.set_inflight(vmid, false);
            return Err(e.into());
        }
        drop(_alloc);
        self.pin_profile(vmid, Arc::clone(&profile));
        self.event(
            NewEvent::new(
                now,
                EventKind::SandboxRequested,
                format!("sandbox {vmid} requested"),
            )
            .sandbox(vmid)
            .job(sb.job.clone())
            .payload(serde_json::json!({"profile": sb.profile, "ttl_minutes": ttl})),
        )
        .await;
        self.spawn_provision(vmid, done);
        Ok(sb)
    }

    pub(crate) fn spawn_provision(
        self: &Arc<Self>,
        vmid: Vmid,
        done: Option<oneshot::Sender<Result<Vmid, String>>>,
    ) {
        let lab = Arc::clone(self);
        lab.set_inflight(vmid, true);
        self.tasks.spawn(async move {
            let result = lab.provision(vmid).await;
            lab.set_inflight(*result.as_ref().unwrap_or(&vmid), false);
            lab.set_inflight(vmid, false);
            if let Some(tx) = done {
                let _ = tx.send(result);
            }
        });
    }

    pub(crate) fn set_inflight(&self, vmid: Vmid, on: bool) {
        let mut set = self
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if on {
            set.insert(vmid);
        } else {
            set.remove(&vmid);
        }
    }

    /// Whether this process is provisioning `vmid` right now.
    pub(crate) fn is_inflight(&self, vmid: Vmid) -> bool {
        self.inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&vmid)
    }

    /// Runs provisioning to READY or FAILED. Returns the final vmid (it changes when the
    /// first choice was taken by someone else) or the failure text.
    async fn provision(self: &Arc<Self>, mut vmid: Vmid) -> Result<Vmid, String> {
        let mut retries = 0;
        loop {
            match self.provision_once(vmid).await {
                Ok(()) => return Ok(vmid),
                Err(None) => return Err("provisioning interrupted".into()),
                Err(Some(f)) if is_taken(&f) && retries < CLONE_RETRIES => {
                    retries += 1;
                    match self.rekey(vmid).await {
                        Ok(next) => {
                            self.set_inflight(next, true);
                            self.set_inflight(vmid, false);
                            vmid = next;
                        }
                        Err(e) => {
                            let f = StepFailure {
                                step: "clone",
                                call: "used_ids",
                                error: e,
                                final_state: SandboxState::Failed,
                            };
                            return Err(self.fail_provisioning(vmid, f).await);
                        }
                    }
                }
                Err(Some(f)) => return Err(self.fail_provisioning(vmid, f).await),
            }
        }
    }

    /// One attempt. `Err(None)`: the sandbox changed under us (destroyed) or shutdown began.
    async fn provision_once(self: &Arc<Self>, vmid: Vmid) -> Result<(), Option<StepFailure>> {
        let lock = self.lock_for(vmid);
        let mut sb = {
            let _g = lock.lock().await;
            let mut sb = self.fresh(vmid, SandboxState::Requested).await?;
            self.transition(&mut sb, SandboxState::Provisioning, "")
                .await
                .map_err(|e| fail("state", "update_sandbox", e))?;
            sb
        };
        let profile = self
            .profile_of(vmid, &sb.profile)
            .map_err(|e| fail("profile", "profiles", e))?;
        let ip = ip_for(&self.settings, vmid).ok_or_else(|| {
            fail(
                "address",
                "allocate",
                EngineError::Invalid(format!("vmid {vmid} has no address in the agent subnet")),
            )
        })?;
        sb.ip = Some(IpAddr::V4(ip));
        sb.mac = Some(mac_for(vmid));
        let spec = vm_spec(&self.settings, &profile, &sb, ip);
        let ssh_public_keys = spec.ssh_public_keys.clone();

        let s = spec.clone();
        let (handle, g) = self
            .step_hold(
                &lock,
                &mut sb,
                "clone",
                "create",
                SandboxState::Provisioning,
                move |lab| async move {
                    lab.deps
                        .hypervisor
                        .create(&s)
                        .await
                        .map_err(|source| EngineError::Hypervisor {
                            call: "create",
                            source,
                        })
                },
            )
            .await?;
        // Recorded before the lock is released, so a destroy never misses the VM.
        sb.vm_created = true;
        sb.node = Some(handle.node.clone());
        sb.iface = handle.iface.clone();
        self.save(&mut sb)
            .await
            .map_err(|e| Some(fail("state", "update_sandbox", e)))?;
        drop(g);

        self.step(
            &lock,
            &mut sb,
            "configure",
            "configure",
            SandboxState::Provisioning,
            move |lab| async move {
                lab.deps
                    .hypervisor
                    .configure(&spec)
                    .await
                    .map_err(|source| EngineError::Hypervisor {
                        call: "configure",
                        source,
                    })
            },
        )
        .await?;

        if sb.workspace.is_none()
            && profile.storage.workspace == crate::profile::WorkspaceMode::Attach
        {
            let (name, size) = (
                sb.name.clone(),
                profile.storage.workspace_size_gb.unwrap_or(10),
            );
            let (ws, g) = self
                .step_hold(
                    &lock,
                    &mut sb,
                    "workspace",
                    "create_volume",
                    SandboxState::Provisioning,
                    move |lab| async move { lab.create_workspace(&name, size).await },
                )
                .await?;
            sb.workspace = Some(ws.id);
            self.save(&mut sb)
                .await
                .map_err(|e| Some(fail("state", "update_sandbox", e)))?;
            drop(g);
        }

        if let Some(ws) = sb.workspace.clone() {
            self.step(
                &lock,
                &mut sb,
                "workspace",
                "attach_volume",
                SandboxState::Provisioning,
                move |lab| async move { lab.attach_workspace_inner(vmid, ws.as_str()).await },
            )
            .await?;
        }

        if self.settings.manage_firewall {
            let net = crate::firewall::SandboxNet {
                vmid,
                iface: sb.iface.clone().unwrap_or_else(|| format!("tap{vmid}i0")),
                mac: mac_for(vmid),
                ip: IpAddr::V4(ip),
                egress: profile.network.egress(),
            };
            self.step(
                &lock,
                &mut sb,
                "firewall",
                "allow",
                SandboxState::Provisioning,
                move |lab| async move {
                    lab.firewall_base().await?;
                    lab.deps
                        .firewall
                        .allow(&net)
                        .await
                        .map_err(|source| EngineError::Firewall {
                            call: "allow",
                            source,
                        })
                },
            )
            .await?;
        }

        let token = generate_token();
        let record = BootstrapToken {
            vmid,
            hash: hash_token(token.expose()),
            expires_at: self.now()
                + chrono::Duration::from_std(self.settings.token_ttl)
                    .unwrap_or(chrono::Duration::minutes(10)),
        };
        self.step(
            &lock,
            &mut sb,
            "token",
            "put_bootstrap_token",
            SandboxState::Provisioning,
            move |lab| async move { Ok(lab.deps.store.put_bootstrap_token(&record).await?) },
        )
        .await?;

        {
            let _g = lock.lock().await;
            let mut cur = self.fresh(vmid, SandboxState::Provisioning).await?;
            self.transition(&mut cur, SandboxState::Booting, "")
                .await
                .map_err(|e| fail("state", "update_sandbox", e))?;
            sb = cur;
        }
        let boot = BootstrapData {
            channel_key: self
                .settings
                .channel_secret
                .as_ref()
                .map(|s| s.key_for(vmid, &sb.created_at)),
            controller_url: self.settings.controller_url.clone(),
            token,
            vmid,
            ssh_public_keys,
        };
        self.step(
            &lock,
            &mut sb,
            "start",
            "start",
            SandboxState::Booting,
            move |lab| async move {
                lab.deps
                    .hypervisor
                    .start(vmid, Some(&boot))
                    .await
                    .map_err(|source| EngineError::Hypervisor {
                        call: "start",
                        source,
                    })
            },
        )
        .await?;
        self.boot_wait(&lock, vmid).await
    }

    /// Waits for the guest address, then READY. Also used by `start` after a stop.
    pub(crate) async fn boot_wait(
        self: &Arc<Self>,
        lock: &Arc<tokio::sync::Mutex<()>>,
        vmid: Vmid,
    ) -> Result<(), Option<StepFailure>> {
        let began = Instant::now();
        loop {
            if self.cancel.is_cancelled() {
                return Err(None);
            }
            match self.deps.store.get_sandbox(vmid).await.map(|s| s.state) {
                Ok(SandboxState::Booting) => {}
                // The guest reported before we saw its address: it is up.
                Ok(SandboxState::Ready | SandboxState::Running | SandboxState::Completed) => {
                    return Ok(());
                }
                Ok(_) => return Err(None),
                Err(e) => return Err(Some(fail("state", "get_sandbox", e.into()))),
            }
            match self.deps.hypervisor.guest_address(vmid).await {
                Ok(Some(addr)) => {
                    let _g = lock.lock().await;
                    let mut sb = self.fresh(vmid, SandboxState::Booting).await?;
                    crate::fail_point!("provision:guest");
                    self.record_step(
                        &sb,
                        "guest",
                        "guest_address",
                        began,
                        serde_json::json!({"address": addr}),
                    )
                    .await;
                    self.transition(&mut sb, SandboxState::Ready, "")
                        .await
                        .map_err(|e| fail("state", "update_sandbox", e))?;
                    return Ok(());
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(Some(fail(
                        "guest",
                        "guest_address",
                        EngineError::Hypervisor {
                            call: "guest_address",
                            source,
                        },
                    )));
                }
            }
            if began.elapsed() >= self.settings.boot_timeout {
                let e = EngineError::InvalidState(format!(
                    "guest did not report an address within {:?}",
                    self.settings.boot_timeout
                ));
                return Err(Some(StepFailure {
                    step: "guest",
                    call: "guest_address",
                    error: e,
                    final_state: SandboxState::Timeout,
                }));
            }
            tokio::select! {
                () = self.cancel.cancelled() => return Err(None),
                () = tokio::time::sleep(self.settings.guest_poll_interval) => {}
            }
        }
    }

    /// Runs one step under the lock: checks the sandbox is still in `expect`, runs `op`, and
    /// records the step's event with its duration.
    #[allow(clippy::too_many_arguments)]
    async fn step<T, F, Fut>(
        self: &Arc<Self>,
        lock: &Arc<tokio::sync::Mutex<()>>,
        sb: &mut Sandbox,
        step: &'static str,
        call: &'static str,
        expect: SandboxState,
        op: F,
    ) -> Result<T, Option<StepFailure>>
    where
        F: FnOnce(Arc<Lab>) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let (out, _g) = self.step_hold(lock, sb, step, call, expect, op).await?;
        Ok(out)
    }

    /// [`Lab::step`] that returns the lock still held, for a result that must be recorded
    /// before anyone else may act on the sandbox.
    #[allow(clippy::too_many_arguments)]
    async fn step_hold<T, F, Fut>(
        self: &Arc<Self>,
        lock: &Arc<tokio::sync::Mutex<()>>,
        sb: &mut Sandbox,
        step: &'static str,
        call: &'static str,
        expect: SandboxState,
        op: F,
    ) -> Result<(T, tokio::sync::OwnedMutexGuard<()>), Option<StepFailure>>
    where
        F: FnOnce(Arc<Lab>) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        if self.cancel.is_cancelled() {
            return Err(None);
        }
        let g = Arc::clone(lock).lock_owned().await;
        let cur = self.fresh(sb.vmid, expect).await?;
        sb.state = cur.state;
        sb.workspace = cur.workspace;
        crate::fail_point!(format!("provision:{step}"));
        let began = Instant::now();
        let out = op(Arc::clone(self))
            .await
            .map_err(|e| fail(step, call, e))?;
        crate::fail_point!(format!("provision:{step}:done"));
        self.record_step(sb, step, call, began, serde_json::Value::Null)
            .await;
        Ok((out, g))
    }

    async fn record_step(
        &self,
        sb: &Sandbox,
        step: &str,
        call: &str,
        began: Instant,
        extra: serde_json::Value,
    ) {
        let ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.event(
            NewEvent::new(
                self.now(),
                EventKind::ProvisionStep,
                format!("{step} ok ({call}, {ms} ms)"),
            )
            .sandbox(sb.vmid)
            .job(sb.job.clone())
            .payload(
                serde_json::json!({"step": step, "call": call, "duration_ms": ms, "detail": extra}),
            ),
        )
        .await;
    }

    /// The stored sandbox if it is still in `expect`; `Err(None)` otherwise.
    async fn fresh(
        &self,
        vmid: Vmid,
        expect: SandboxState,
    ) -> Result<Sandbox, Option<StepFailure>> {
        match self.deps.store.get_sandbox(vmid).await {
            Ok(sb) if sb.state == expect => Ok(sb),
            Ok(_) => Err(None),
            Err(e) => Err(Some(fail("state", "get_sandbox", e.into()))),
        }
    }
}

pub(crate) fn fail(step: &'static str, call: &'static str, error: EngineError) -> StepFailure {
    StepFailure {
        step,
        call,
        error,
        final_state: SandboxState::Failed,
    }
}

fn is_taken(f: &StepFailure) -> bool {
    matches!(
        f.error,
        EngineError::Hypervisor {
            source: HypervisorError::AlreadyExists(_),
            ..
        }
    )
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {} failed in {}: {}",
            self.step,
            self.call,
            chain(&self.error)
        )
    }
}
