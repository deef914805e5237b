//! The shipped monitoring files (`deploy/`): every metric the Grafana dashboard and the alert
//! rules name exists, and `promtool` accepts the rules, their unit tests and the example
//! scrape config.
#![cfg(test)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use prometheus_client::encoding::text::encode;

use agentlab_metrics::Metrics;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every series name the registry can expose: gauges by name, counters with `_total`,
/// histograms with `_bucket`, `_sum` and `_count`.
fn exposed_names() -> BTreeSet<String> {
    let mut text = String::new();
    encode(&mut text, Metrics::new().registry()).expect("encode");
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("TYPE line");
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// `agentlab_…` identifiers in `text`.
fn metric_refs(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"\bagentlab_[a-z0-9_]+").expect("regex");
    re.find_iter(text).map(|m| m.as_str().to_owned()).collect()
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| exprs(i, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_names_only_existing_metrics() {
    let path = deploy().join("grafana/agentlab-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "a dashboard with its panels");
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(
            targets
                .iter()
                .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
            "panel {} has a query per target",
            p["title"]
        );
    }
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    let known = exposed_names();
    let mut used = BTreeSet::new();
    for e in &all {
        let refs = metric_refs(e);
        assert!(!refs.is_empty(), "expression names an AgentLab metric: {e}");
        for r in refs {
            assert!(
                known.contains(&r),
                "{r} (in {e}) is not a metric; known: {known:?}"
            );
            used.insert(r);
        }
    }
    // Every family has a panel.
    for family in [
        "agentlab_sandboxes",
        "agentlab_jobs",
        "agentlab_jobs_finished_total",
        "agentlab_provision_step_duration_seconds_bucket",
        "agentlab_sandbox_time_to_ready_seconds_bucket",
        "agentlab_backend_call_duration_seconds_bucket",
        "agentlab_backend_call_errors_total",
        "agentlab_lease_expirations_total",
        "agentlab_artifact_bytes_total",
        "agentlab_bootstrap_refused_total",
        "agentlab_guest_requests_total",
        "agentlab_events_stored",
    ] {
        assert!(used.contains(family), "no panel shows {family}");
    }
}

#[test]
fn the_alert_rules_name_only_existing_metrics() {
    let text = std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).expect("rules");
    let known = exposed_names();
    let refs = metric_refs(&text);
    assert!(refs.len() >= 3);
    for r in refs {
        assert!(known.contains(&r), "{r} is not a metric");
    }
}

/// `promtool`, or `None` (printed `SKIP:`) outside CI when it is not installed.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool is missing (CI installs the Debian package prometheus)"
    );
    println!("SKIP: promtool not installed (apt-get install prometheus)");
    None
}

fn promtool_ok(args: &[&str]) {
    let Some(tool) = promtool() else { return };
    let out = Command::new(tool)
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .expect("run promtool");
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{both}");
    assert!(both.contains("SUCCESS"), "promtool {args:?}:\n{both}");
}

#[test]
fn promtool_checks_the_alert_rules() {
    promtool_ok(&["check", "rules", "alerts.yml"]);
}

#[test]
fn promtool_runs_the_alert_rule_unit_tests() {
    promtool_ok(&["test", "rules", "alerts_test.yml"]);
}

#[test]
fn promtool_checks_the_example_scrape_config() {
    promtool_ok(&["check", "config", "prometheus.yml"]);
}
