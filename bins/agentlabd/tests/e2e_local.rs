//! End to end with `backend: local`: the real `agentlabd` (inside a test router namespace, with
//! `network.manage_firewall: true`), the real CLI, and the real `agent-runner` in a bubblewrap
//! sandbox. The agent is a script from the job's repository that probes its own isolation
//! (host files, the read-only base, host processes, LAN, host ports, the guest listener, the
//! TEST-NET "internet", where secrets live) and writes the results as an artifact; the tests
//! then check that destroy removes every trace, that memory limits kill (when cgroup v2 memory
//! is writable) and that a SIGKILLed daemon finds its running sandbox again.
//!
//! Privileged: needs root, `bwrap`, `ip`, `nft`, `nsenter`. Without them the tests print
//! `SKIP: …` (or panic under `CI`). Nothing is sent from the machine's own network namespace.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/netlab.rs"]
mod netlab;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use netlab::{
    GUEST_PORT, HOST_PORT, LAN_IP, NetLab, SERVER_PORT, WAN_IP, cgroup_memory_usable, parse_kv,
    privileged,
};

/// A distinctive secret value (never written to artifacts by the probe script).
const SECRET: &str = "agentlab-LOCAL-e2e-7Qx!v#9/+~";

/// The agent: probes written to `$AGENTLAB_ARTIFACTS_DIR/probes.txt` as `key=value`, then a
/// commit. `@MARKER@`, `@TESTPID@`, `@GW@` are replaced by the test.
const PROBE_SCRIPT: &str = r#"#!/bin/bash
out="$AGENTLAB_ARTIFACTS_DIR/probes.txt"
: > "$out"
r() { echo "$1=$2" >> "$out"; }
# conn/banner NAME ADDR PORT TRIES: expected successes get several tries (a loaded machine).
conn() {
  for _ in $(seq "$4"); do
    if timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then r "$1" connected; return; fi
  done
  r "$1" blocked
}
banner() {
  for _ in $(seq "$4"); do
    if b=$(timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3 && head -n1 <&3" 2>/dev/null); then r "$1" "$b"; return; fi
  done
  r "$1" none
}
if cat @MARKER@ > /dev/null 2>&1; then r marker readable; else r marker unreadable; fi
if [ -e /root ]; then r root_dir present; else r root_dir absent; fi
if touch /usr/agentlab-e2e-write 2> /dev/null; then r usr_write allowed; else r usr_write denied; fi
if [ -e /proc/@TESTPID@ ]; then r test_pid visible; else r test_pid hidden; fi
r daemon_procs "$(cat /proc/[0-9]*/cmdline 2> /dev/null | tr '\0' '\n' | grep -c '[a]gentlabd')"
r proc_count "$(ls /proc | grep -cE '^[0-9]+$')"
conn guest @GW@ @GUEST_PORT@ 5
banner wan @WAN@ @PORT@ 5
banner lan @LAN@ @PORT@ 1
banner host_port @GW@ @HOST_PORT@ 1
sd=/run/agentlab/secrets
r secrets_fs "$(awk -v d=$sd '$2==d {print $3}' /proc/mounts | tail -n1)"
if [ -n "$E2E_SECRET" ]; then r secret_env set; else r secret_env unset; fi
r secret_in_tmpfs "$(grep -rlsF -- "$E2E_SECRET" $sd | wc -l)"
r secret_elsewhere "$(grep -rlsF -- "$E2E_SECRET" /home /tmp /etc /run/agentlab/bootstrap.json 2> /dev/null | wc -l)"
echo hello >> README.md
git add README.md
git commit -q -m hello
echo probes-done
"#;

fn profile(agent: &str, memory_mb: u32) -> String {
    format!(
        "name: e2e\ntemplate_vmid: 9000\nnetwork:\n  bridge: {{bridge}}\n  mode: nat\n\
         resources:\n  cores: 1\n  memory_mb: {memory_mb}\n\
         behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
         repo:\n  clone_path: /home/agent/repo\nsecrets_bundle: default\n\
         agent:\n  command: {agent:?}\n"
    )
}

/// Runs `job run` and returns (exit code, combined output, the job's JSON).
fn run_job(lab: &NetLab) -> (Option<i32>, String, serde_json::Value) {
    let url = lab.repo_url();
    let out = lab.cli(&[
        "job",
        "run",
        "--repo",
        &url,
        "--task",
        "probe",
        "--profile",
        "e2e",
    ]);
    let jobs = lab.json(&["job", "list"]);
    let job = jobs.as_array().unwrap()[0].clone();
    let text = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text, job)
}

/// Every regular file under `root` except the bundle store and the identity must not contain
/// `needle`.
fn assert_not_on_disk(root: &Path, needle: &str) -> usize {
    let mut scanned = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p != root && ["secrets", "age.key"].contains(&name) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(Result::ok).map(|e| e.path()));
            }
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let mut data = Vec::new();
        if std::fs::File::open(&p)
            .and_then(|mut f| f.read_to_end(&mut data))
            .is_err()
        {
            continue;
        }
        assert!(
            !String::from_utf8_lossy(&data).contains(needle),
            "secret found on disk in {}",
            p.display()
        );
        scanned += 1;
    }
    scanned
}

/// A marker file under /root, removed on drop.
struct Marker(std::path::PathBuf);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn job_in_a_local_sandbox_is_isolated_and_leaves_no_trace() {
    if !privileged() {
        return;
    }
    let pid = std::process::id();
    let marker = Marker(format!("/root/agentlab-e2e-marker-{pid}").into());
    std::fs::write(&marker.0, "host-only-marker-content\n").unwrap();

    let script = |lab: &NetLab| {
        let text = PROBE_SCRIPT
            .replace("@MARKER@", &marker.0.display().to_string())
            .replace("@TESTPID@", &pid.to_string())
            .replace("@GW@", &lab.gateway())
            .replace("@GUEST_PORT@", &GUEST_PORT.to_string())
            .replace("@HOST_PORT@", &HOST_PORT.to_string())
            .replace("@WAN@", WAN_IP)
            .replace("@LAN@", LAN_IP)
            .replace("@PORT@", &SERVER_PORT.to_string());
        vec![("probe.sh".to_owned(), text)]
    };
    let lab = NetLab::start(&profile("bash /home/agent/repo/probe.sh", 512), script);
    lab.secrets(&["set-env", "E2E_SECRET"], Some(SECRET));
    lab.secrets(&["add-file", "--path", "e2e/secret.txt"], Some(SECRET));

    // Positive controls, from inside the router namespace: the servers the sandbox must not
    // reach are up and reachable without the sandbox firewall.
    assert_eq!(
        lab.fetch_from(&lab.router, &lab.gateway(), HOST_PORT)
            .as_deref(),
        Some("host-banner")
    );
    assert_eq!(
        lab.fetch_from(&lab.router, LAN_IP, SERVER_PORT).as_deref(),
        Some("lan-banner")
    );

    let (code, output, job) = run_job(&lab);
    assert_eq!(code, Some(0), "{output}\njob: {job}\nlog:\n{}", lab.log());
    assert_eq!(job["state"], "COMPLETED", "{job}");
    assert!(
        job["outcome"]["commit"]
            .as_str()
            .is_some_and(|c| c.len() == 40),
        "{job}"
    );
    let vmid = job["sandbox"].as_u64().unwrap();
    lab.wait_sandbox(vmid, |v| v["state"] == "DESTROYED");

    let unpacked = lab.download_artifacts(job["id"].as_str().unwrap());
    let probes_text = std::fs::read_to_string(unpacked.join("artifacts/probes.txt"))
        .unwrap_or_else(|e| {
            let log = std::fs::read_to_string(unpacked.join("runner.log")).unwrap_or_default();
            panic!("no probes.txt ({e}); runner.log:\n{log}")
        });
    eprintln!("probes from inside sandbox {vmid}:\n{probes_text}");
    let p = parse_kv(&probes_text);
    let expect = [
        ("marker", "unreadable"),
        ("usr_write", "denied"),
        ("test_pid", "hidden"),
        ("daemon_procs", "0"),
        ("guest", "connected"),
        ("wan", "wan-banner"),
        ("lan", "none"),
        ("host_port", "none"),
        ("secrets_fs", "tmpfs"),
        ("secret_env", "set"),
        ("secret_elsewhere", "0"),
    ];
    let wrong: Vec<String> = expect
        .iter()
        .filter(|(k, v)| p.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}: expected {v}, got {:?}", p.get(*k)))
        .collect();
    assert!(
        wrong.is_empty(),
        "isolation probes failed:\n{}",
        wrong.join("\n")
    );
    let in_tmpfs: u32 = p["secret_in_tmpfs"].parse().unwrap();
    assert!(
        in_tmpfs >= 1,
        "the secret file is not under the tmpfs: {probes_text}"
    );
    let procs: u32 = p["proc_count"].parse().unwrap();
    assert!(procs < 50, "the sandbox sees {procs} processes");

    // Destroy removed every trace; the secret is nowhere in the daemon's directory.
    lab.assert_no_traces(vmid);
    let scanned = assert_not_on_disk(lab.dir.path(), SECRET);
    assert!(scanned >= 5, "leak scan saw only {scanned} files");
    assert_not_on_disk(&unpacked, "host-only-marker-content");
}

#[test]
fn memory_limit_kills_an_agent_that_exceeds_it() {
    if !privileged() {
        return;
    }
    if let Err(reason) = cgroup_memory_usable() {
        eprintln!("SKIP (memory limit part only): {reason}");
        return;
    }
    let agent = "python3 -c \"b = b'x' * (600 << 20); print(len(b))\"";
    let lab = NetLab::start(&profile(agent, 128), |_| Vec::new());
    let (code, output, job) = run_job(&lab);
    assert_eq!(code, Some(1), "{output}\njob: {job}\nlog:\n{}", lab.log());
    assert_eq!(job["state"], "FAILED", "{job}");
    let exit = job["outcome"]["exit_code"].as_i64().unwrap_or(0);
    assert_ne!(exit, 0, "{job}");
    let vmid = job["sandbox"].as_u64().unwrap();
    lab.wait_sandbox(vmid, |v| v["state"] == "DESTROYED");
    lab.assert_no_traces(vmid);
}

/// Waits until a process in `vmid`'s namespace has `needle` in its command line; returns the
/// namespace's pids.
fn wait_for_process(lab: &NetLab, vmid: u64, needle: &str) -> Vec<u32> {
    let t0 = std::time::Instant::now();
    loop {
        let pids = lab.sandbox_pids(vmid);
        let found = pids.iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        });
        if found {
            return pids;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "no {needle:?} in sandbox {vmid}: {pids:?}\nlog:\n{}",
            lab.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Asserts every trace of a live sandbox is there (the cgroup only when limits apply).
fn assert_all_traces(lab: &NetLab, vmid: u64) {
    let cgroup_ok = cgroup_memory_usable().is_ok();
    let missing: Vec<String> = lab
        .traces(vmid)
        .into_iter()
        .filter(|(what, present)| !*present && (cgroup_ok || !what.starts_with("cgroup")))
        .map(|(what, _)| what)
        .collect();
    assert!(missing.is_empty(), "sandbox {vmid} lacks {missing:?}");
    // The host side of the veth is a port of the agent bridge inside the router namespace.
    let link = agentlab_net::netns::ip(
        Some(&lab.router),
        &["-o", "link", "show", "dev", &format!("al{vmid}h")],
    )
    .unwrap();
    assert!(
        link.contains(&format!("master {}", lab.bridge)),
        "veth not on the bridge: {link}"
    );
}

#[test]
fn sigkilled_daemon_finds_its_running_sandboxes_and_destroy_cleans_up() {
    if !privileged() {
        return;
    }
    let mut lab = NetLab::start(&profile("true", 512), |_| Vec::new());
    // A keepalive sandbox (its runner exits at once: there is no job) …
    let sb = lab.json(&[
        "sandbox",
        "new",
        "--profile",
        "e2e",
        "--keepalive",
        "--wait",
    ]);
    let idle = sb["vmid"].as_u64().unwrap_or_else(|| panic!("{sb}"));
    lab.wait_sandbox(idle, |v| v["state"] == "READY");
    assert_all_traces(&lab, idle);
    // … and one whose agent keeps running.
    let url = lab.repo_url();
    let started = lab.json(&[
        "job",
        "run",
        "--detach",
        "--repo",
        &url,
        "--task",
        "wait",
        "--profile",
        "e2e",
        "--agent",
        "echo agent-sleeping; exec sleep 600",
    ]);
    let job_id = started["id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            lab.json(&["job", "list"])[0]["id"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no job id: {started}"));
    let job = lab.json(&["job", "show", &job_id]);
    let busy = job["sandbox"]
        .as_u64()
        .or_else(|| {
            // The sandbox is assigned right after the job is queued.
            std::thread::sleep(std::time::Duration::from_secs(1));
            lab.json(&["job", "show", &job_id])["sandbox"].as_u64()
        })
        .unwrap_or_else(|| panic!("job without sandbox: {job}"));
    let pids_before = wait_for_process(&lab, busy, "sleep");
    assert_all_traces(&lab, busy);
    // The backend reports what the running sandbox uses (idle stop reads its CPU time).
    let shown = lab.json(&["sandbox", "show", &busy.to_string()]);
    let usage = &shown["usage"];
    assert!(usage["pid"].as_u64().unwrap_or(0) > 0, "{shown}");
    assert!(usage["rss_bytes"].as_u64().unwrap_or(0) > 0, "{shown}");
    assert!(usage["cpu_seconds"].as_f64().is_some(), "{shown}");

    lab.kill_daemon();
    // The sandbox does not depend on the daemon process.
    assert_eq!(
        lab.sandbox_pids(busy),
        pids_before,
        "SIGKILL took the sandbox down"
    );
    lab.spawn_daemon();

    let shown = lab.json(&["sandbox", "show", &idle.to_string()]);
    assert_eq!(
        shown["state"],
        "READY",
        "after restart: {shown}\nlog:\n{}",
        lab.log()
    );
    let job = lab.json(&["job", "show", &job_id]);
    assert_eq!(
        job["state"],
        "RUNNING",
        "after restart: {job}\nlog:\n{}",
        lab.log()
    );
    assert_eq!(
        lab.sandbox_pids(busy),
        pids_before,
        "the restarted daemon replaced the running sandbox's processes"
    );
    // The restarted daemon reset its tables and registered both sandboxes again.
    assert_all_traces(&lab, idle);
    assert_all_traces(&lab, busy);

    let out = lab.cli(&["job", "cancel", &job_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.wait_sandbox(busy, |v| v["state"] == "DESTROYED");
    lab.assert_no_traces(busy);
    let out = lab.cli(&["sandbox", "destroy", &idle.to_string()]);
    assert!(
        out.status.success(),
        "{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.log()
    );
    lab.wait_sandbox(idle, |v| v["state"] == "DESTROYED");
    lab.assert_no_traces(idle);
}

/// `agentlab net check` (the operator's smoke test) against the live setup of a running
/// daemon: run inside the router namespace, it builds a throwaway sandbox namespace on the
/// bridge and its probe matrix passes (TEST-NET reachable; LAN, host port dropped).
#[test]
fn net_check_passes_against_the_live_daemon_setup() {
    if !privileged() {
        return;
    }
    let lab = NetLab::start(&profile("true", 512), |_| Vec::new());
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.router))
        .arg(harness::bin("agentlab"))
        .args(["net", "check", "--config"])
        .arg(&lab.config)
        .args(["--reach", &format!("{WAN_IP}:{SERVER_PORT}")])
        .args(["--blocked", &format!("{LAN_IP}:{SERVER_PORT}")])
        .args(["--blocked", &format!("{}:{HOST_PORT}", lab.gateway())])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "net check failed:\n{stdout}\n{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.log()
    );
    assert!(stdout.contains("probes passed"), "{stdout}");
    assert!(
        stdout.contains(WAN_IP) && stdout.contains(LAN_IP),
        "{stdout}"
    );
}

#[test]
fn the_daemon_puts_its_tables_back_when_they_are_deleted_behind_its_back() {
    if !privileged() {
        return;
    }
    let lab = NetLab::start(&profile("true", 512), |_| Vec::new());
    let before = lab.nft_table();
    let nft = lab.nft.to_str().unwrap();
    // What `agentlab net delete --force` (or anyone with nft) would do to a running host.
    agentlab_net::netns::exec_in(&lab.router, nft, &["delete", "table", "inet", "agentlab"])
        .unwrap();
    agentlab_net::netns::exec_in(&lab.router, nft, &["delete", "table", "bridge", "agentlab"])
        .unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let inet =
            agentlab_net::netns::exec_in(&lab.router, nft, &["list", "table", "inet", "agentlab"]);
        let bridge = agentlab_net::netns::exec_in(
            &lab.router,
            nft,
            &["list", "table", "bridge", "agentlab"],
        );
        if inet.is_ok() && bridge.is_ok() {
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "tables not re-applied\nlog:\n{}",
            lab.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(lab.nft_table(), before, "the same policy is back");
    assert!(
        lab.log().contains("re-applied"),
        "the repair is logged\nlog:\n{}",
        lab.log()
    );
}
