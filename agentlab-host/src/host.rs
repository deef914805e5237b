//! [`Host`]: a running [`Lab`] with everything a guest needs from the host — the guest
//! listener (bootstrap, reports, logs, artifact uploads, the sandbox channel), the artifact
//! store and its garbage collection, recovery after a restart, lease and deadline ticks and the
//! firewall watch — built from one [`Config`] by the same wiring `agentlabd` uses.
//!
//! `agentlabd` adds the control API and metrics on top; an embedder calls the [`Lab`] directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use agentlab_core::api_token::ApiTokenStore;
use agentlab_core::config::Config;
use agentlab_core::engine::{Lab, LabDeps};
use agentlab_core::profile::Profiles;

use crate::artifacts::ArtifactStore;
use crate::channel::ChannelHub;
use crate::guest::conns::Connections;
use crate::guest::ratelimit::RateLimiter;
use crate::guest::{self, GuestState};
use crate::host_lock::{HostLock, LockError};
use crate::maintenance::DiskReport;
use crate::wiring::{self, WiringError};

/// How often the engine's time-driven work (deadlines, leases, idle stop, retries) runs.
pub const TICK_EVERY: Duration = Duration::from_secs(1);

/// Why a [`Host`] could not start; each names the step and its cause.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The data directory could not be created.
    #[error("creating data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another engine (a daemon or an embedded program) already uses this data directory,
    /// or its lock file could not be taken.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// A backend, the state database or the network isolation could not be set up.
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// The channel secret file could not be read or created.
    #[error("channel secret {path}: {source}")]
    ChannelSecret {
        /// The file (`<data_dir>/channel.secret`).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The guest listener could not bind its address.
    #[error("binding the guest listener on {addr} (does the agent bridge exist?): {source}")]
    GuestListen {
        /// `guest.listen`.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

type DepsHook = Box<dyn FnOnce(&mut LabDeps) + Send>;
type RouterHook = Box<dyn FnOnce(Router) -> Router + Send>;

/// Builds a [`Host`]; see [`Host::builder`].
pub struct HostBuilder {
    cfg: Config,
    profiles: Profiles,
    map_deps: Option<DepsHook>,
    map_guest_router: Option<RouterHook>,
}

impl std::fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuilder")
            .field("backend", &self.cfg.backend)
            .field("profiles", &self.profiles.names())
            .finish_non_exhaustive()
    }
}

impl HostBuilder {
    /// Changes the backends before the engine is built (e.g. wraps the hypervisor in a
    /// metering decorator).
    pub fn map_deps(mut self, f: impl FnOnce(&mut LabDeps) + Send + 'static) -> Self {
        self.map_deps = Some(Box::new(f));
        self
    }

    /// Wraps the guest listener's router (e.g. in a metrics layer).
    pub fn map_guest_router(mut self, f: impl FnOnce(Router) -> Router + Send + 'static) -> Self {
        self.map_guest_router = Some(Box::new(f));
        self
    }

    /// Builds the backends and the engine, binds the guest listener and starts the
    /// background work. Serving starts at once; recovery of what a previous process left runs
    /// in the background.
    pub async fn start(self) -> Result<Host, HostError> {
        let cfg = self.cfg;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| HostError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let lock = HostLock::acquire(&cfg.data_dir)?;
        let (mut deps, tokens) = wiring::build(&cfg, &self.profiles).await?;
        if let Some(f) = self.map_deps {
            f(&mut deps);
        }
        tracing::info!(
            backend = deps.hypervisor.name(),
            profiles = self.profiles.len(),
            "backends ready"
        );
        let mut settings = wiring::settings(&cfg);
        let secret_path = cfg.data_dir.join("channel.secret");
        settings.channel_secret = Some(
            agentlab_core::channel_key::ChannelSecret::load_or_create(&secret_path).map_err(
                |source| HostError::ChannelSecret {
                    path: secret_path.clone(),
                    source,
                },
            )?,
        );
        let lab = Lab::new(deps, settings, self.profiles);
        let listener = tokio::net::TcpListener::bind(cfg.guest.listen)
            .await
            .map_err(|source| HostError::GuestListen {
                addr: cfg.guest.listen,
                source,
            })?;
        let guest_addr = listener.local_addr().unwrap_or(cfg.guest.listen);
        let cancel = CancellationToken::new();
        let channels = Arc::new(ChannelHub::default());
        let artifacts = ArtifactStore::new(cfg.artifact_dir());

        lab.spawn_recovery(TICK_EVERY);
        if cfg.network.manage_firewall && cfg.network.watch_interval_secs > 0 {
            lab.spawn_firewall_watch(Duration::from_secs(cfg.network.watch_interval_secs));
        }
        artifacts.clone().spawn_gc(
            Arc::clone(&lab),
            Duration::from_secs(cfg.retention.gc_interval_secs),
            cancel.clone(),
        );
        let disks = crate::maintenance::spawn(&lab, &cfg, &cancel);
        let state = GuestState {
            lab: Arc::clone(&lab),
            artifacts: artifacts.clone(),
            limiter: Arc::new(RateLimiter::new(cfg.guest.fetch_rate_per_minute)),
            redactors: Arc::new(Mutex::new(HashMap::new())),
            artifact_max_bytes: cfg.guest.artifact_max_bytes,
            channels: Arc::clone(&channels),
            cancel: cancel.clone(),
        };
        let max_body = usize::try_from(cfg.guest.max_body_bytes).unwrap_or(usize::MAX);
        let mut app = guest::router(state, max_body);
        if let Some(f) = self.map_guest_router {
            app = f(app);
        }
        let conns = Arc::new(Connections::default());
        crate::release::spawn_release_watch(
            &lab,
            Arc::clone(&conns),
            Arc::clone(&channels),
            cancel.clone(),
        );
        let idle = Duration::from_secs(cfg.guest.idle_timeout_secs);
        let guest_srv = tokio::spawn(guest::conns::serve(
            listener,
            app,
            conns,
            idle,
            cancel.clone(),
        ));
        tracing::info!(guest = %guest_addr, "guest listener ready");
        Ok(Host {
            _lock: lock,
            lab,
            artifacts,
            disks,
            channels,
            tokens,
            guest_addr,
            cancel,
            guest_srv,
        })
    }
}

/// A running engine with its guest listener and background work: the guest listener
/// (bootstrap, reports, logs, artifact uploads, the sandbox channel), the artifact store and its
/// garbage collection, recovery after a restart, lease and deadline ticks, the firewall watch,
/// retention passes and disk checks. End it with [`Host::shutdown`].
#[derive(Debug)]
pub struct Host {
    /// Held for the host's lifetime; dropped last, after shutdown.
    _lock: HostLock,
    lab: Arc<Lab>,
    artifacts: ArtifactStore,
    disks: DiskReport,
    channels: Arc<ChannelHub>,
    tokens: Arc<dyn ApiTokenStore>,
    guest_addr: SocketAddr,
    cancel: CancellationToken,
    guest_srv: JoinHandle<()>,
}

impl Host {
    /// A builder for `cfg` with `profiles`; nothing happens until
    /// [`start`](HostBuilder::start).
    pub fn builder(cfg: Config, profiles: Profiles) -> HostBuilder {
        HostBuilder {
            cfg,
            profiles,
            map_deps: None,
            map_guest_router: None,
        }
    }

    /// The engine: create sandboxes, run jobs, read events.
    pub fn lab(&self) -> &Arc<Lab> {
        &self.lab
    }

    /// The stored artifacts (uploaded by jobs through the guest listener).
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    /// The last disk usage checks of the directories the engine writes (empty until the
    /// first check, or always when `quotas.disk_warn_percent` is unset).
    pub fn disks(&self) -> &DiskReport {
        &self.disks
    }

    /// The sandboxes' channels (exec, shell, copy, forward into a running sandbox).
    pub fn channels(&self) -> &Arc<ChannelHub> {
        &self.channels
    }

    /// The API token store (the same state database).
    pub fn tokens(&self) -> &Arc<dyn ApiTokenStore> {
        &self.tokens
    }

    /// Where the guest listener listens (its bound address: a `:0` port is resolved).
    pub fn guest_addr(&self) -> SocketAddr {
        self.guest_addr
    }

    /// Fires when the host shuts down; tasks an embedder adds may select on it.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Stops accepting work, parks what is in flight (a later start resumes or cleans it up)
    /// and waits up to 10 s for the guest listener to close.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.lab.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.guest_srv).await;
    }
}
