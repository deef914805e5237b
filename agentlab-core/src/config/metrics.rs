//! `metrics:` the Prometheus metrics listener (see `docs/metrics.md`).

use std::net::SocketAddr;

use serde::Deserialize;

/// `metrics:` where the daemon serves `GET /metrics` in the Prometheus/OpenMetrics text
/// format. The endpoint has no authentication: keep it on loopback or a management network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the metrics listener (default `127.0.0.1:8845`); `null` turns it off.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8845))),
        }
    }
}
