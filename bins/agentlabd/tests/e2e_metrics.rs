//! End to end: a daemon on the fake backend (the real `agent-runner` as guest) runs jobs; its
//! `metrics.listen` endpoint is read directly and by a real Prometheus server (Debian package
//! `prometheus`) scraping it on loopback, and PromQL queries through Prometheus's HTTP API
//! return the job counts and sandbox gauges. The shipped alert rules are loaded too, so
//! Prometheus evaluates them against the live series.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::{Daemon, bin};

const PROFILE: &str = "name: e2e\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
    behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
    repo:\n  clone_path: {dir}/checkout\nagent:\n  command: \"true\"\n";

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0); returns (status, headers, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_owned(), body.to_owned()))
}

/// The value of sample `series` in exposition `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Runs `job run` for the e2e profile; returns the job's JSON.
fn run_job(d: &Daemon, repo: &str, agent: &str, keepalive: bool) -> serde_json::Value {
    let mut args = vec![
        "job",
        "run",
        "--repo",
        repo,
        "--task",
        "metrics",
        "--profile",
        "e2e",
        "--agent",
        agent,
    ];
    if keepalive {
        args.push("--keepalive");
    }
    let out = d.cli(&args);
    let jobs = d.json(&["job", "list"]);
    let job = jobs.as_array().unwrap()[0].clone();
    assert!(
        job["state"] == "COMPLETED" || job["state"] == "FAILED",
        "job ended: {job}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    job
}

/// A Prometheus server killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `prometheus` binary, or `None` (printed `SKIP:`) when it is missing outside CI.
fn prometheus_or_skip() -> Option<()> {
    let ok = Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the prometheus binary is missing (CI installs the Debian package prometheus)"
    );
    println!("SKIP: prometheus not installed (apt-get install prometheus)");
    None
}

fn start_prometheus(dir: &Path, target_port: u16) -> Prometheus {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/alerts.yml");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: agentlab\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
            rules = rules.display()
        ),
    )
    .unwrap();
    let port = harness::free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn prometheus");
    let p = Prometheus { child, port };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        if matches!(http_get(port, "/-/ready"), Ok((200, _, _))) {
            return p;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "prometheus did not become ready:\n{}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
}

/// Runs an instant PromQL query; the single result's value, `None` for an empty result.
fn promql(p: &Prometheus, query: &str) -> Option<f64> {
    let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let (status, _, body) = http_get(p.port, &format!("/api/v1/query?query={q}")).unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{query}: {body}");
    let result = v["data"]["result"].as_array().unwrap();
    assert!(result.len() <= 1, "{query}: one series expected: {body}");
    result
        .first()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
}

/// Polls `query` until it equals `want` (Prometheus scrapes every second).
fn wait_promql(p: &Prometheus, query: &str, want: f64, dir: &Path) {
    let t0 = Instant::now();
    let mut last = None;
    while t0.elapsed() < Duration::from_secs(60) {
        last = promql(p, query);
        if last == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "{query} = {last:?}, want {want}; prometheus log:\n{}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
}

#[test]
fn prometheus_scrapes_job_counts_and_sandbox_gauges() {
    let mport = harness::free_port();
    let extra = format!(
        "  runner_path: {}\nmetrics:\n  listen: 127.0.0.1:{mport}\n",
        bin("agent-runner").display()
    );
    let d = Daemon::start_with(Some(PROFILE), &extra);
    let repo = harness::empty_repo(&d);

    let ok = run_job(&d, &repo, "echo fine", true);
    assert_eq!(ok["state"], "COMPLETED", "{ok}");
    let failed = run_job(&d, &repo, "exit 3", false);
    assert_eq!(failed["state"], "FAILED", "{failed}");
    let gone = failed["sandbox"].as_u64().unwrap();
    d.wait_sandbox(gone, |v| v["state"] == "DESTROYED");

    // The endpoint itself: OpenMetrics text with the counts (the recorder follows the
    // events asynchronously: wait until both jobs' final states are counted).
    let t0 = Instant::now();
    let (status, head, text) = loop {
        let got = http_get(mport, "/metrics").unwrap();
        let counted = sample(&got.2, "agentlab_jobs_finished_total{state=\"FAILED\"}") == Some(1.0)
            && sample(&got.2, "agentlab_jobs_finished_total{state=\"COMPLETED\"}") == Some(1.0);
        if counted || t0.elapsed() > Duration::from_secs(15) {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 200, "{head}\n{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert_eq!(
        sample(&text, "agentlab_jobs_finished_total{state=\"COMPLETED\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "agentlab_jobs_finished_total{state=\"FAILED\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "agentlab_jobs_queued_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "agentlab_sandboxes{state=\"COMPLETED\",profile=\"e2e\"}"
        ),
        Some(1.0),
        "the keepalive job's sandbox stays: {text}"
    );
    assert_eq!(
        sample(&text, "agentlab_sandbox_time_to_ready_seconds_count"),
        Some(2.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "agentlab_provision_step_duration_seconds_count{step=\"clone\"}"
        ) == Some(2.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "agentlab_backend_call_duration_seconds_count{backend=\"fake\",call=\"create\"}"
        ) == Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "agentlab_guest_requests_total{route=\"/v1/bootstrap/fetch\",method=\"POST\",status=\"200\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        sample(&text, "agentlab_events_stored").is_some_and(|n| n > 10.0),
        "{text}"
    );

    // A real Prometheus scraping it.
    let Some(()) = prometheus_or_skip() else {
        return;
    };
    let pdir = tempfile::tempdir().unwrap();
    let p = start_prometheus(pdir.path(), mport);
    wait_promql(&p, "up{job=\"agentlab\"}", 1.0, pdir.path());
    wait_promql(
        &p,
        "agentlab_jobs_finished_total{state=\"COMPLETED\"}",
        1.0,
        pdir.path(),
    );
    wait_promql(
        &p,
        "agentlab_jobs_finished_total{state=\"FAILED\"}",
        1.0,
        pdir.path(),
    );
    wait_promql(&p, "sum(agentlab_jobs_finished_total)", 2.0, pdir.path());
    wait_promql(&p, "agentlab_jobs{state=\"COMPLETED\"}", 1.0, pdir.path());
    wait_promql(&p, "sum(agentlab_sandboxes)", 1.0, pdir.path());
    wait_promql(
        &p,
        "agentlab_sandboxes{state=\"COMPLETED\",profile=\"e2e\"}",
        1.0,
        pdir.path(),
    );
    wait_promql(
        &p,
        "sum(agentlab_backend_call_errors_total{kind!=\"not_found\"}) or vector(0)",
        0.0,
        pdir.path(),
    );

    // A third job after Prometheus started: the counter moves in Prometheus too.
    let again = run_job(&d, &repo, "echo again", false);
    assert_eq!(again["state"], "COMPLETED", "{again}");
    wait_promql(
        &p,
        "agentlab_jobs_finished_total{state=\"COMPLETED\"}",
        2.0,
        pdir.path(),
    );
    wait_promql(&p, "agentlab_jobs_queued_total", 3.0, pdir.path());

    // The shipped alert rules load and evaluate against the live series.
    let (status, _, body) = http_get(p.port, "/api/v1/rules").unwrap();
    assert_eq!(status, 200, "{body}");
    let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
    let groups = rules["data"]["groups"].as_array().unwrap();
    let names: Vec<&str> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for want in [
        "AgentLabJobFailureRate",
        "AgentLabSandboxStuck",
        "AgentLabBackendErrors",
    ] {
        assert!(names.contains(&want), "{want} loaded: {names:?}");
    }
    let t0 = Instant::now();
    loop {
        let (_, _, body) = http_get(p.port, "/api/v1/rules").unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let all: Vec<serde_json::Value> = v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        let evaluated = all.iter().all(|r| r["health"] == "ok");
        if evaluated {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "every rule evaluates without error: {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn an_occupied_metrics_address_is_logged_and_the_daemon_serves_without_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let d = Daemon::start(&format!("metrics:\n  listen: 127.0.0.1:{port}\n"));
    let status = d.json(&["status"]);
    assert_eq!(status["backend"], "fake", "the daemon serves: {status}");
    let log = d.log();
    assert!(
        log.contains("cannot bind the metrics listener; running without it"),
        "{log}"
    );
    drop(taken);
}
