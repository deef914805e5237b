//! Memory rows: the resident set of the real `agentlabd` on the fake backend when idle and
//! with 1, 50 and 200 idle sandboxes (created through its control socket). The binary is
//! `AGENTLABD_BIN`, else `<target dir>/release/agentlabd` (`cargo build --release -p
//! agentlabd`); without one these rows say so and are skipped.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Row, env_usize};

/// The release `agentlabd` to run, if there is one.
pub fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AGENTLABD_BIN") {
        return Some(PathBuf::from(p));
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    Some(target.join("release/agentlabd")).filter(|p| p.exists())
}

/// Resident set of `pid` in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One HTTP/1.1 request over the control socket; returns the status line.
pub fn request(socket: &Path, method: &str, path: &str, body: &str) -> String {
    let out = request_full(socket, method, path, body);
    out.lines().next().unwrap_or_default().to_owned()
}

/// One HTTP/1.1 request over the control socket; returns the whole response.
pub fn request_full(socket: &Path, method: &str, path: &str, body: &str) -> String {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return String::new();
    };
    let _ = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: agentlabd\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A running `agentlabd`, killed when dropped.
pub struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to 60 s) until `want` sandboxes are READY (for 0: until status answers; it
/// lists non-zero states only).
pub fn settle(socket: &Path, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut s = String::new();
        if let Ok(mut c) = UnixStream::connect(socket) {
            let _ = write!(
                c,
                "GET /v1/status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            );
            let _ = c.read_to_string(&mut s);
        }
        let answered = s.starts_with("HTTP/1.1 200");
        if (want == 0 && answered) || s.contains(&format!("\"READY\":{want}")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub async fn run() -> Vec<Row> {
    let Some(bin) = binary() else {
        eprintln!("perf: no agentlabd release binary (AGENTLABD_BIN); memory rows skipped");
        return vec![Row::new(
            "daemon RSS: skipped (no agentlabd binary)",
            0.0,
            "MiB",
        )];
    };
    tokio::task::spawn_blocking(move || measure(&bin))
        .await
        .unwrap_or_default()
}

/// Starts `bin` on the fake backend with its files in `d`; returns it and its control
/// socket once it answers.
pub fn start(bin: &Path, d: &Path) -> (Daemon, PathBuf) {
    let socket = d.join("run/agentlabd.sock");
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles");
    let config = d.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "socket: {s}\ndata_dir: {d}/data\nprofiles_dir: {p}\nbackend: fake\n\
             guest:\n  listen: 127.0.0.1:0\nnetwork:\n  manage_firewall: false\n\
             secrets:\n  dir: {d}/secrets\n  identity: {d}/age.key\nlog:\n  level: warn\n",
            s = socket.display(),
            d = d.display(),
            p = profiles.display(),
        ),
    )
    .expect("config");
    let child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agentlabd");
    let daemon = Daemon(child);
    settle(&socket, 0);
    (daemon, socket)
}

fn measure(bin: &Path) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (daemon, socket) = start(bin, dir.path());
    let pid = daemon.0.id();
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_mib(pid);
    let mut rows = vec![Row::new("daemon idle RSS", idle, "MiB").target("< 30 MiB")];
    let counts: Vec<usize> = std::env::var("AGENTLAB_PERF_SANDBOXES")
        .unwrap_or_else(|_| "1,50,200".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let _ = env_usize;
    let mut made = 0;
    let mut first_per = None;
    for n in counts {
        while made < n {
            let body = r#"{"profile":"yolo-ephemeral","keepalive":true,"ttl_minutes":600}"#;
            let status = request(&socket, "POST", "/v1/sandboxes", body);
            assert!(status.contains(" 202"), "create sandbox: {status}");
            made += 1;
        }
        settle(&socket, made);
        std::thread::sleep(Duration::from_millis(500));
        let per = (rss_mib(pid) - idle) * 1024.0 / n as f64;
        let row = Row::new(format!("RSS per idle sandbox ({n})"), per, "KiB");
        rows.push(match first_per {
            None => {
                first_per = Some(per);
                row.target("flat")
            }
            Some(f) => row.vs(f).target("flat"),
        });
    }
    rows
}
