//! Into a running local sandbox, measured through the real daemon, CLI and guest agent
//! (release build), each figure beside a reference measured in the same run:
//! - exec round trip: `agentlab sandbox exec VMID -- true`, whole CLI process (reference:
//!   `agentlab status`, one control-socket request from a fresh CLI process);
//! - keystroke echo in `agentlab sandbox shell`: a byte typed into the CLI's terminal until
//!   the shell's echo of it arrives (reference: the same with a local `sh` in a PTY);
//! - `sandbox cp` in and out: MiB/s for a 256 MiB file (reference: a local `cp` of it);
//! - `sandbox forward`: MiB/s reading 256 MiB from a server in the sandbox (reference: the
//!   same server on the host's loopback).
//!
//! Needs root, `bwrap`, `ip`, `nft`, `nsenter`, `python3`; prints a reason and measures
//! nothing otherwise. Run with `cargo bench -p agentlabd --bench sandbox_access`
//! (`AGENTLAB_ACCESS_ROUNDS`, default 50, sets the exec and keystroke rounds).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/e2e/harness.rs"]
mod harness;
#[path = "../tests/e2e/netlab.rs"]
mod netlab;

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netlab::NetLab;

const PROFILE: &str = "name: dev\ntemplate_vmid: 9000\nnetwork:\n  bridge: {bridge}\n  mode: nat\n\
    resources:\n  cores: 1\n  memory_mb: 1024\nbehavior:\n  ttl_minutes_default: 30\n  keepalive_default: true\n\
    agent:\n  command: \"true\"\n";

const SIZE: usize = 256 << 20;

/// Sends 256 MiB of zeros to each connection on 127.0.0.1:PORT.
const SERVER: &str = "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',int(sys.argv[1])))\ns.listen(8)\nbuf=bytes(1<<20)\nwhile True:\n  c,_=s.accept()\n  for _ in range(256): c.sendall(buf)\n  c.close()\n";

/// Types N bytes into `argv` under a PTY and prints each echo latency in ms.
const ECHO: &str = r#"
import os, pty, sys, time, select
n = int(sys.argv[1]); argv = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen = []
def drain(secs):
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                seen.append(os.read(fd, 65536))
            except OSError:
                return
drain(4)
for i in range(n):
    ch = b"abcdefghij"[i % 10:i % 10 + 1]
    t = time.perf_counter()
    os.write(fd, ch)
    got = b""
    while ch not in got:
        r, _, _ = select.select([fd], [], [], 10)
        if not r:
            print("timeout after", b"".join(seen) + got)
            sys.exit(1)
        try:
            got += os.read(fd, 65536)
        except OSError:
            print("the terminal closed:", b"".join(seen) + got)
            sys.exit(1)
    print((time.perf_counter() - t) * 1000)
os.write(fd, b"\x15exit\r")
drain(2)
os.kill(pid, 9)
"#;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn timed(n: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn echo(n: usize, argv: &[&str]) -> Vec<f64> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(ECHO)
        .arg(n.to_string())
        .args(argv)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(
        v.len(),
        n,
        "echo driver: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

fn mib_s(bytes: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    bytes as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64()
}

fn read_all(port: u16) -> usize {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn row(metric: &str, value: f64, reference: f64, unit: &str) {
    println!(
        "{metric:<44} {value:>10.3} {reference:>12.3} {:>9.2}x  {unit}",
        value / reference
    );
}

fn main() {
    if !netlab::privileged() {
        return;
    }
    let rounds: usize = std::env::var("AGENTLAB_ACCESS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let lab = NetLab::start(PROFILE, |_| Vec::new());
    let sb = lab.json(&["sandbox", "new", "--profile", "dev", "--wait"]);
    let v = sb["vmid"].as_u64().unwrap().to_string();
    let t0 = Instant::now();
    while !lab
        .cli(&["sandbox", "exec", &v, "--", "true"])
        .status
        .success()
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "no channel");
        std::thread::sleep(Duration::from_millis(100));
    }
    let agentlab = harness::bin("agentlab");
    let sock = lab.socket.to_str().unwrap().to_owned();

    let mut exec = timed(rounds, || {
        assert!(
            lab.cli(&["sandbox", "exec", &v, "--", "true"])
                .status
                .success()
        );
    });
    let mut status = timed(rounds, || {
        assert!(lab.cli(&["status"]).status.success());
    });
    let a = agentlab.to_str().unwrap();
    let mut keys = echo(rounds, &[a, "--socket", &sock, "sandbox", "shell", &v]);
    let mut keys_ref = echo(rounds, &["/bin/sh"]);

    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![7u8; SIZE]).unwrap();
    let cp_ref = mib_s(SIZE, || {
        std::fs::copy(&big, dir.path().join("copy.bin")).unwrap();
    });
    let dst = format!("{v}:/home/agent/in");
    let cp_in = mib_s(SIZE, || {
        let out = lab.cli(&["sandbox", "cp", big.to_str().unwrap(), &dst]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let back = dir.path().join("back");
    let cp_out = mib_s(SIZE, || {
        let out = lab.cli(&[
            "sandbox",
            "cp",
            &format!("{v}:/home/agent/in/big.bin"),
            back.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });

    // Forward: the server in the sandbox, and the same on the host's loopback.
    let script = "setsid -f python3 -c \"$0\" 18081 </dev/null >/dev/null 2>&1";
    let out = lab.cli(&["sandbox", "exec", &v, "--", "sh", "-c", script, SERVER]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let mut fwd = Command::new(&agentlab)
        .args([
            "--socket",
            &sock,
            "sandbox",
            "forward",
            &v,
            &format!("{port}:18081"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = [0u8; 10];
    fwd.stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut banner)
        .unwrap();
    let t1 = Instant::now();
    while std::panic::catch_unwind(|| read_all(port)).map_or(true, |n| n != SIZE) {
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "forwarded server never answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let fwd_rate = mib_s(SIZE, || assert_eq!(read_all(port), SIZE));
    let _ = fwd.kill();
    let _ = fwd.wait();
    let ref_port = free_port();
    let mut local = Command::new("python3")
        .args(["-c", SERVER, &ref_port.to_string()])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let fwd_ref = mib_s(SIZE, || assert_eq!(read_all(ref_port), SIZE));
    let _ = local.kill();
    let _ = local.wait();
    let _ = std::io::stdout().flush();

    println!(
        "{:<44} {:>10} {:>12} {:>10}  unit",
        "metric", "value", "reference", "ratio"
    );
    println!("{}", "-".repeat(90));
    row(
        "exec `true` p50 (ref: agentlab status)",
        pct(&mut exec, 0.5),
        pct(&mut status, 0.5),
        "ms",
    );
    row(
        "exec `true` p99 (ref: agentlab status)",
        pct(&mut exec, 0.99),
        pct(&mut status, 0.99),
        "ms",
    );
    row(
        "shell keystroke echo p50 (ref: local sh)",
        pct(&mut keys, 0.5),
        pct(&mut keys_ref, 0.5),
        "ms",
    );
    row(
        "shell keystroke echo p99 (ref: local sh)",
        pct(&mut keys, 0.99),
        pct(&mut keys_ref, 0.99),
        "ms",
    );
    row("cp in, 256 MiB (ref: local cp)", cp_in, cp_ref, "MiB/s");
    row("cp out, 256 MiB (ref: local cp)", cp_out, cp_ref, "MiB/s");
    row(
        "forward, 256 MiB (ref: host loopback)",
        fwd_rate,
        fwd_ref,
        "MiB/s",
    );
    let _ = lab.cli(&["sandbox", "destroy", &v]);
}
