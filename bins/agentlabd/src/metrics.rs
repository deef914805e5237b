//! The daemon's metrics (see `docs/metrics.md`): the metered hypervisor, the event recorder
//! and the `metrics.listen` listener serving `GET /metrics`. [`DaemonMetrics::router`] is the
//! same route for mounting on another listener (the remote API).

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use agentlab_core::config::MetricsConfig;
use agentlab_core::engine::{Lab, LabDeps};
use agentlab_metrics::{EventRecorder, Exporter, MeteredHypervisor, Metrics};

/// Wraps the backend of `deps` so every hypervisor call is timed and its errors counted.
pub fn meter_backend(deps: &mut LabDeps, metrics: &Arc<Metrics>) {
    let inner = Arc::clone(&deps.hypervisor);
    deps.hypervisor = Arc::new(MeteredHypervisor::new(inner, Arc::clone(metrics)));
}

/// The running metrics of the daemon: the event recorder and the listener, both ending when
/// the daemon's cancellation token fires.
#[derive(Debug)]
pub struct DaemonMetrics {
    exporter: Exporter,
    tasks: Vec<JoinHandle<()>>,
}

impl DaemonMetrics {
    /// Starts the event recorder (call it before the engine's recovery appends events) and,
    /// when `cfg.listen` is set, the metrics listener. A listener that cannot bind is logged
    /// as an error and left out: the daemon serves its sandboxes without it.
    pub async fn start(
        cfg: &MetricsConfig,
        lab: &Arc<Lab>,
        metrics: &Arc<Metrics>,
        cancel: &CancellationToken,
    ) -> Self {
        let store = Arc::clone(&lab.deps().store);
        let recorder = EventRecorder::new(Arc::clone(metrics), store);
        let mut tasks = vec![
            agentlab_metrics::spawn_event_recorder(
                recorder,
                lab.subscribe_changes(),
                cancel.clone(),
            )
            .await,
        ];
        let exporter = Exporter::for_lab(Arc::clone(metrics), lab);
        if let Some(addr) = cfg.listen {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    tracing::info!(metrics = %addr, "listening");
                    let app = agentlab_metrics::router(exporter.clone());
                    let cancel = cancel.clone();
                    tasks.push(tokio::spawn(async move {
                        let served = axum::serve(listener, app)
                            .with_graceful_shutdown(async move { cancel.cancelled().await })
                            .await;
                        if let Err(e) = served {
                            tracing::error!(error = %e, "metrics listener failed");
                        }
                    }));
                }
                Err(e) => {
                    tracing::error!(metrics = %addr, error = %e,
                        "cannot bind the metrics listener; running without it");
                }
            }
        }
        Self { exporter, tasks }
    }

    /// `GET /metrics` as a router, for mounting on another listener (e.g. the remote API).
    pub fn router(&self) -> axum::Router {
        agentlab_metrics::router(self.exporter.clone())
    }

    /// Waits for the recorder and the listener to end (after cancellation).
    pub async fn stopped(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
