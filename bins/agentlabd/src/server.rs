//! Daemon start-up and shutdown: wiring, engine, both listeners, background loops.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use agentlab_core::config::Config;
use agentlab_core::profile::Profiles;
use agentlab_host::Host;

use crate::control::AppState;
use crate::{control, socket};

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
    crate::reload::log_deprecations(&profiles);
    for name in cfg.quotas.max_sandboxes_per_profile.keys() {
        if profiles.get(name).is_none() {
            tracing::warn!(profile = %name,
                "quotas.max_sandboxes_per_profile names a profile that is not loaded");
        }
    }
    let metrics = Arc::new(agentlab_metrics::Metrics::new());
    let (m1, m2) = (Arc::clone(&metrics), Arc::clone(&metrics));
    let host = Host::builder(cfg.clone(), profiles)
        .map_deps(move |deps| crate::metrics::meter_backend(deps, &m1))
        .map_guest_router(move |r| agentlab_metrics::instrument(r, m2))
        .start()
        .await?;
    let control_listener = socket::bind(&cfg.socket, cfg.socket_group.as_deref()).await?;
    let lab = Arc::clone(host.lab());
    let cancel = host.cancel_token().clone();
    let daemon_metrics =
        crate::metrics::DaemonMetrics::start(&cfg.metrics, &lab, &metrics, &cancel).await;
    tracing::info!(socket = %cfg.socket.display(), guest = %host.guest_addr(), "listening");

    let state = AppState {
        lab: Arc::clone(&lab),
        artifacts: host.artifacts().clone(),
        version,
        cancel: cancel.clone(),
        limits: Arc::new(control::limits::ApiLimits::new(cfg.limits.clone())),
        channels: Arc::clone(host.channels()),
        tokens: Arc::clone(host.tokens()),
        disks: host.disks().clone(),
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
    let c1 = cancel.clone();
    let control_srv = tokio::spawn(async move {
        axum::serve(
            control_listener,
            app.into_make_service_with_connect_info::<socket::PeerCred>(),
        )
        .with_graceful_shutdown(async move { c1.cancelled().await })
        .await
    });

    shutdown_signal().await;
    tracing::info!("shutting down: parking in-flight work");
    host.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = control_srv.await;
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
