//! `metrics:` the Prometheus metrics listener (see `docs/metrics.md`).

use std::net::SocketAddr;

use serde::Deserialize;

/// `metrics:` where the daemon serves `GET /metrics` in the Prometheus/OpenMetrics text
/// format. The endpoint has no authentication: keep it on loopback or a management network.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the metrics listener (default `127.0.0.1:9464`); `null` turns it off.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_yaml_str(&format!("backend: fake\n{text}"), "config.yaml")
    }

    #[test]
    fn listener_defaults_to_loopback_and_can_be_moved_or_turned_off() {
        let d = parse("").expect("defaults");
        assert_eq!(
            d.metrics.listen,
            Some("127.0.0.1:9464".parse().expect("addr"))
        );
        assert!(d.metrics.listen.is_some_and(|a| a.ip().is_loopback()));
        let moved = parse("metrics:\n  listen: \"[::1]:9100\"\n").expect("moved");
        assert_eq!(
            moved.metrics.listen,
            Some("[::1]:9100".parse().expect("addr"))
        );
        let off = parse("metrics:\n  listen: null\n").expect("off");
        assert_eq!(off.metrics.listen, None);
    }

    #[test]
    fn unknown_keys_and_bad_addresses_are_refused() {
        let e = parse("metrics:\n  listn: 127.0.0.1:1\n").expect_err("typo");
        assert!(e.to_string().contains("listen"), "suggests the key: {e}");
        assert!(parse("metrics:\n  listen: localhost\n").is_err());
    }
}
