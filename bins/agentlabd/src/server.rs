//! Daemon start-up and shutdown: wiring, engine, both listeners, background loops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use agentlab_core::config::Config;
use agentlab_core::engine::Lab;
use agentlab_core::profile::Profiles;

use crate::artifacts::ArtifactStore;
use crate::control::AppState;
use crate::guest::{GuestState, ratelimit::RateLimiter};
use crate::{control, guest, socket, wiring};

/// How often the engine's time-driven work runs.
const TICK_EVERY: Duration = Duration::from_secs(1);

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads the profiles (`reload.rs`).
pub async fn run(
    cfg: Config,
    config_path: std::path::PathBuf,
    version: &'static str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let stale = control::admin_backup::remove_stale_work_dirs(&cfg.data_dir);
    if stale > 0 {
        tracing::info!(
            dirs = stale,
            "removed the work directories of interrupted backups"
        );
    }
    let profiles = Profiles::load_dir(&cfg.profiles_dir).context("loading profiles")?;
    for name in cfg.quotas.max_sandboxes_per_profile.keys() {
        if profiles.get(name).is_none() {
            tracing::warn!(profile = %name,
                "quotas.max_sandboxes_per_profile names a profile that is not loaded");
        }
    }
    let (mut deps, tokens) = wiring::build(&cfg, &profiles).await?;
    let metrics = Arc::new(agentlab_metrics::Metrics::new());
    crate::metrics::meter_backend(&mut deps, &metrics);
    tracing::info!(
        backend = deps.hypervisor.name(),
        profiles = profiles.len(),
        "backends ready"
    );
    let mut settings = wiring::settings(&cfg);
    let secret_path = cfg.data_dir.join("channel.secret");
    settings.channel_secret = Some(
        agentlab_core::channel_key::ChannelSecret::load_or_create(&secret_path)
            .with_context(|| format!("channel secret {}", secret_path.display()))?,
    );
    let lab = Lab::new(deps, settings, profiles);
    let channels = Arc::new(crate::channel::ChannelHub::default());
    let cancel = CancellationToken::new();
    let daemon_metrics =
        crate::metrics::DaemonMetrics::start(&cfg.metrics, &lab, &metrics, &cancel).await;
    let artifacts = ArtifactStore::new(cfg.artifact_dir());

    let control_listener = socket::bind(&cfg.socket, cfg.socket_group.as_deref()).await?;
    let guest_listener = tokio::net::TcpListener::bind(cfg.guest.listen)
        .await
        .with_context(|| {
            format!(
                "binding the guest listener on {} (does the agent bridge exist?)",
                cfg.guest.listen
            )
        })?;
    tracing::info!(socket = %cfg.socket.display(), guest = %cfg.guest.listen, "listening");

    // Serve at once; recover in the background (cancelled at shutdown). Requests that arrive
    // meanwhile are safe: the engine skips what this process started itself.
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

    let max_body = usize::try_from(cfg.guest.max_body_bytes).unwrap_or(usize::MAX);
    let state = AppState {
        lab: Arc::clone(&lab),
        artifacts: artifacts.clone(),
        version,
        cancel: cancel.clone(),
        limits: Arc::new(control::limits::ApiLimits::new(cfg.limits.clone())),
        channels: Arc::clone(&channels),
        tokens,
        disks,
    };
    let backup = Arc::new(control::admin_backup::BackupPlan {
        config: cfg.clone(),
        config_path: config_path.clone(),
        version,
    });
    let reloader = Arc::new(crate::reload::Reloader::new(
        config_path,
        cfg.clone(),
        Arc::clone(&lab),
    ));
    crate::reload::spawn_sighup(Arc::clone(&reloader), cancel.clone());
    let admin = control::admin::router(control::admin::AdminState { reloader, backup });
    let remote_srv = match cfg.remote.listen {
        Some(addr) => Some(
            crate::remote::start(
                &cfg,
                addr,
                state.clone(),
                daemon_metrics.router().merge(admin.clone()),
                cancel.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let app = control::socket_router(state, admin, cancel.clone());
    let gstate = GuestState {
        lab: Arc::clone(&lab),
        artifacts,
        limiter: Arc::new(RateLimiter::new(cfg.guest.fetch_rate_per_minute)),
        redactors: Arc::new(Mutex::new(HashMap::new())),
        artifact_max_bytes: cfg.guest.artifact_max_bytes,
        channels: Arc::clone(&channels),
        cancel: cancel.clone(),
    };
    let gapp = agentlab_metrics::instrument(guest::router(gstate, max_body), metrics);
    let conns = Arc::new(guest::conns::Connections::default());
    spawn_release_watch(&lab, Arc::clone(&conns), channels, cancel.clone());

    let c1 = cancel.clone();
    let control_srv = tokio::spawn(async move {
        axum::serve(
            control_listener,
            app.into_make_service_with_connect_info::<socket::PeerCred>(),
        )
        .with_graceful_shutdown(async move { c1.cancelled().await })
        .await
    });
    let c2 = cancel.clone();
    let idle = Duration::from_secs(cfg.guest.idle_timeout_secs);
    let guest_srv = tokio::spawn(guest::conns::serve(guest_listener, gapp, conns, idle, c2));

    shutdown_signal().await;
    tracing::info!("shutting down: parking in-flight work");
    cancel.cancel();
    lab.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = control_srv.await;
        let _ = guest_srv.await;
        if let Some(r) = remote_srv {
            let _ = r.await;
        }
        daemon_metrics.stopped().await;
    })
    .await;
    let _ = std::fs::remove_file(&cfg.socket);
    tracing::info!("stopped");
    Ok(())
}

/// Closes the guest-listener connections of every sandbox the engine releases (destroyed, or
/// failed with its VM gone), so a sandbox that later gets the same address meets no stale
/// socket.
fn spawn_release_watch(
    lab: &Arc<Lab>,
    conns: Arc<guest::conns::Connections>,
    channels: Arc<crate::channel::ChannelHub>,
    cancel: CancellationToken,
) {
    let mut released = lab.subscribe_released();
    tokio::spawn(async move {
        loop {
            let r = tokio::select! {
                () = cancel.cancelled() => return,
                r = released.recv() => r,
            };
            match r {
                Ok(rel) => {
                    if channels.release(rel.vmid) {
                        tracing::debug!(sandbox = %rel.vmid, "closed the released sandbox's channel");
                    }
                    if let Some(ip) = rel.ip {
                        let n = conns.close_peer(ip);
                        tracing::debug!(sandbox = %rel.vmid, ip = %ip, connections = n,
                            "closing the released sandbox's guest connections");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "fell behind the sandbox release announcements");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
