//! End to end with `backend: qemu`: the real `agentlabd` (inside a test router namespace, with
//! `network.manage_firewall: true`), the real CLI, and a real VM under TCG booting the image
//! from `agentlab image build` (the shared test image, built once per target directory). In
//! the guest, systemd starts the runner, the bootstrap file arrives through the QEMU guest
//! agent, cloud-init configures the engine's address, the runner clones the job's repository
//! from the git daemon behind the router and runs the agent as uid 1000. The agent checks its
//! uid and that the secrets live only in tmpfs (failing the job otherwise), probes the network
//! (guest listener reachable; LAN server and host port not), then sleeps while the test
//! SIGKILLs and restarts the daemon: the job still completes, its artifacts come back and
//! destroy leaves no QEMU process, tap, overlay or socket.
//!
//! Opt-in like the image build it needs: set `AGENTLAB_IMAGE_BUILD_TEST=1` (prints `SKIP:`
//! otherwise). Privileged: root, qemu-system-x86_64, qemu-img, nft, ip, nsenter, git, and the
//! image build's tools.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/netlab.rs"]
mod netlab;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netlab::{
    GUEST_PORT, HOST_PORT, LAN_IP, LabOptions, NetLab, SERVER_PORT, WAN_IP, parse_kv, privileged,
};

const OPT_IN: &str = "AGENTLAB_IMAGE_BUILD_TEST";

/// A distinctive secret value (never written to artifacts by the probe script).
const SECRET: &str = "agentlab-QEMU-e2e-5Rt!w#2/+~";

/// The agent, run by the runner as `agent` in the VM. `@GW@` etc. are replaced by the test.
const PROBE_SCRIPT: &str = r#"#!/bin/bash
out="$AGENTLAB_ARTIFACTS_DIR/probes.txt"
: > "$out"
r() { echo "$1=$2" >> "$out"; }
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
r uid "$(id -u)"
r kernel "$(uname -r)"
r pid1 "$(cat /proc/1/comm)"
sd=/run/agentlab/secrets
r secrets_fs "$(awk -v d=$sd '$2==d {print $3}' /proc/mounts | tail -n1)"
if [ -n "$E2E_SECRET" ]; then r secret_env set; else r secret_env unset; fi
r secret_in_tmpfs "$(grep -rlsF -- "$E2E_SECRET" $sd | wc -l)"
r secret_elsewhere "$(grep -rlsF -- "$E2E_SECRET" /home /tmp /etc /var/tmp 2> /dev/null | wc -l)"
conn guest @GW@ @GUEST_PORT@ 5
banner wan @WAN@ @PORT@ 5
banner lan @LAN@ @PORT@ 1
banner host_port @GW@ @HOST_PORT@ 1
echo probes-written
if [ "$(id -u)" != 1000 ]; then echo "agent runs as uid $(id -u), not 1000"; exit 3; fi
if [ "$(awk -v d=$sd '$2==d {print $3}' /proc/mounts | tail -n1)" != tmpfs ]; then echo "secrets not on tmpfs"; exit 4; fi
# Time for the test to SIGKILL and restart the daemon.
touch "$AGENTLAB_ARTIFACTS_DIR/sleeping"
sleep @SLEEP@
echo hello >> README.md
git add README.md
git commit -q -m hello
echo probes-done
"#;

const SLEEP_SECS: u64 = 130;

fn profile() -> String {
    "name: e2e\ntemplate_vmid: 9000\nnetwork:\n  bridge: {bridge}\n  mode: nat\n\
     resources:\n  cores: 2\n  memory_mb: 1024\n\
     behavior:\n  ttl_minutes_default: 30\n  job_timeout_minutes: 15\n\
     repo:\n  clone_path: /home/agent/repo\nsecrets_bundle: default\n\
     agent:\n  command: \"bash /home/agent/repo/probe.sh\"\n"
        .to_owned()
}

/// The shared image, or `None` (skip) without the opt-in or QEMU.
fn image() -> Option<PathBuf> {
    if std::env::var_os(OPT_IN).is_none() {
        eprintln!("SKIP: set {OPT_IN}=1 to build the real image and run a job in a QEMU VM");
        return None;
    }
    if !privileged() {
        return None;
    }
    let have = |p: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    for tool in ["qemu-system-x86_64", "qemu-img"] {
        if !have(tool) {
            let reason = format!("{tool} missing (apt-get install qemu-system-x86 qemu-utils)");
            assert!(std::env::var_os("CI").is_none(), "{reason}");
            eprintln!("SKIP: {reason}");
            return None;
        }
    }
    let runner = harness::bin("agent-runner");
    Some(agentlab_image::testing::shared_test_image(&runner).expect("the shared test image"))
}

fn job_json(lab: &NetLab, id: &str) -> serde_json::Value {
    lab.json(&["job", "show", id])
}

fn wait_job(
    lab: &NetLab,
    id: &str,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let j = job_json(lab, id);
        if pred(&j) {
            return j;
        }
        assert!(
            t0.elapsed() < limit,
            "job {id} stuck: {j}\nlog:\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// QEMU processes of this lab (their command line holds the lab's data directory).
fn qemu_pids(lab: &NetLab) -> Vec<i32> {
    let needle = lab.data_dir().display().to_string();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                        let c = String::from_utf8_lossy(&c);
                        c.contains("qemu-system") && c.contains(&needle)
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a VM sandbox leaves while it exists, as `(what, present)`.
fn traces(lab: &NetLab, vmid: u64) -> Vec<(String, bool)> {
    let tap = format!("alq{vmid}");
    let dir = lab.data_dir().join(format!("qemu/{vmid}"));
    let sip = lab.sandbox_ip(vmid);
    let in_table = lab
        .nft_table()
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|w| w == sip);
    vec![
        ("QEMU process".to_owned(), !qemu_pids(lab).is_empty()),
        (
            format!("tap {tap} in {}", lab.router),
            agentlab_net::netns::link_exists(Some(&lab.router), &tap),
        ),
        (
            format!("overlay {}/root.qcow2", dir.display()),
            dir.join("root.qcow2").exists(),
        ),
        (
            format!("QMP socket in {}", dir.display()),
            dir.join("qmp.sock").exists(),
        ),
        (
            format!("agent socket in {}", dir.display()),
            dir.join("qga.sock").exists(),
        ),
        (format!("{sip} in nft table inet agentlab"), in_table),
    ]
}

/// Kills this lab's QEMU processes when the test ends (also when it panics): a VM is not a
/// child of the test and would outlive the lab's namespaces.
struct KillVms(String);

impl Drop for KillVms {
    fn drop(&mut self) {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for pid in dir
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        {
            if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("qemu-system") && c.contains(&self.0)
            }) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

#[test]
fn a_job_runs_in_a_qemu_vm_survives_a_daemon_kill_and_leaves_no_trace() {
    let Some(image) = image() else { return };
    // `AGENTLAB_QEMU_E2E_MACHINE=microvm` runs the same job with direct kernel boot.
    let machine = std::env::var("AGENTLAB_QEMU_E2E_MACHINE").unwrap_or_else(|_| "q35".to_owned());
    let backend = format!(
        "backend: qemu\nqemu:\n  image: {}\n  accel: tcg\n  machine: {machine}\n  boot_timeout_secs: 300\n",
        image.display()
    );
    let script = |lab: &NetLab| {
        let text = PROBE_SCRIPT
            .replace("@GW@", &lab.gateway())
            .replace("@GUEST_PORT@", &GUEST_PORT.to_string())
            .replace("@HOST_PORT@", &HOST_PORT.to_string())
            .replace("@WAN@", WAN_IP)
            .replace("@LAN@", LAN_IP)
            .replace("@PORT@", &SERVER_PORT.to_string())
            .replace("@SLEEP@", &SLEEP_SECS.to_string());
        vec![("probe.sh".to_owned(), text)]
    };
    let opts = LabOptions {
        backend: Some(backend),
        ..LabOptions::default()
    };
    // A key for `sandbox ssh`: the profile gives it to the VM (cloud-init seed and runner),
    // and the image's agentlab-ssh-if-keys.service starts sshd because of it.
    let keys = tempfile::tempdir().expect("dir");
    let key = keys.path().join("id");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(ok.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
    let profile = format!("{}ssh_public_keys:\n  - \"{}\"\n", profile(), public.trim());
    let mut lab = NetLab::start_with(&profile, script, &opts);
    let _vms = KillVms(lab.data_dir().display().to_string());
    lab.secrets(&["set-env", "E2E_SECRET"], Some(SECRET));
    lab.secrets(&["add-file", "--path", "e2e/secret.txt"], Some(SECRET));
    // Positive controls from the router: the servers the guest must not reach are up.
    assert_eq!(
        lab.fetch_from(&lab.router, LAN_IP, SERVER_PORT).as_deref(),
        Some("lan-banner")
    );

    let url = lab.repo_url();
    let started = lab.json(&[
        "job",
        "run",
        "--detach",
        "--repo",
        &url,
        "--task",
        "probe",
        "--profile",
        "e2e",
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
    let t0 = Instant::now();
    let running = wait_job(&lab, &job_id, Duration::from_secs(600), |j| {
        j["state"] == "RUNNING" || j["state"] == "COMPLETED" || j["state"] == "FAILED"
    });
    assert_eq!(
        running["state"],
        "RUNNING",
        "{running}\nlog:\n{}",
        lab.log()
    );
    let vmid = running["sandbox"].as_u64().expect("sandbox");
    eprintln!("{machine}: job RUNNING after {:?}", t0.elapsed());
    // The agent is in its sleep once the probes ran (the runner streams logs meanwhile).
    std::thread::sleep(Duration::from_secs(15));
    let before = qemu_pids(&lab);
    assert_eq!(before.len(), 1, "one QEMU process: {before:?}");

    lab.kill_daemon();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        qemu_pids(&lab),
        before,
        "the VM does not depend on the daemon process"
    );
    lab.spawn_daemon();
    let shown = lab.json(&["sandbox", "show", &vmid.to_string()]);
    assert_ne!(
        shown["state"],
        "DESTROYED",
        "after restart: {shown}\nlog:\n{}",
        lab.log()
    );

    // The guest agent's channel reconnects to the restarted daemon: exec and cp into the
    // VM while its job runs (docs/sandbox-access.md).
    let v = vmid.to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    let user = loop {
        let out = lab.cli(&["sandbox", "exec", &v, "--", "id", "-un"]);
        // Until the channel is back, the exec may run through the QEMU guest agent instead
        // (the fallback, marked by its notice): wait for the channel.
        let fallback = String::from_utf8_lossy(&out.stderr).contains("hypervisor's guest agent");
        if out.status.success() && !fallback {
            break String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "exec never worked in the VM: {}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            lab.log()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(user, "agent");
    ssh_into_the_vm(&lab, &v, &key);
    eprintln!(
        "{machine}: exec through the channel after {:?}",
        t0.elapsed()
    );
    let out = lab.cli(&["sandbox", "exec", &v, "--user", "root", "--", "id", "-u"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = lab.dir.path().join("to-vm.txt");
    std::fs::write(&local, "copied into the VM\n").expect("write");
    let out = lab.cli(&[
        "sandbox",
        "cp",
        local.to_str().expect("path"),
        &format!("{v}:/tmp/in"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lab.cli(&["sandbox", "exec", &v, "--", "cat", "/tmp/in/to-vm.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "copied into the VM\n");
    channel_figures(&lab, &v, &machine);

    let done = wait_job(&lab, &job_id, Duration::from_secs(600), |j| {
        ["COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"].contains(&j["state"].as_str().unwrap_or(""))
    });
    eprintln!("{machine}: job finished after {:?}: {done}", t0.elapsed());
    let unpacked = lab.download_artifacts(&job_id);
    let probes =
        std::fs::read_to_string(unpacked.join("artifacts/probes.txt")).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(unpacked.join("runner.log")).unwrap_or_default();
            panic!(
                "no probes.txt ({e}); job {done}\nrunner.log:\n{log}\ndaemon log:\n{}",
                lab.log()
            )
        });
    eprintln!("probes from inside VM {vmid}:\n{probes}");
    assert_eq!(
        done["state"],
        "COMPLETED",
        "{done}\nprobes:\n{probes}\nlog:\n{}",
        lab.log()
    );
    assert!(
        done["outcome"]["commit"]
            .as_str()
            .is_some_and(|c| c.len() == 40),
        "{done}"
    );
    let p = parse_kv(&probes);
    let expect = [
        ("uid", "1000"),
        ("pid1", "systemd"),
        ("secrets_fs", "tmpfs"),
        ("secret_env", "set"),
        ("secret_elsewhere", "0"),
        ("guest", "connected"),
        ("wan", "wan-banner"),
        ("lan", "none"),
        ("host_port", "none"),
    ];
    let wrong: Vec<String> = expect
        .iter()
        .filter(|(k, v)| p.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}: expected {v}, got {:?}", p.get(*k)))
        .collect();
    assert!(wrong.is_empty(), "probes failed:\n{}", wrong.join("\n"));
    assert!(
        p["secret_in_tmpfs"].parse::<u32>().expect("count") >= 1,
        "{probes}"
    );

    lab.wait_sandbox(vmid, |v| v["state"] == "DESTROYED");
    let left: Vec<String> = traces(&lab, vmid)
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(what, _)| what)
        .collect();
    assert!(
        left.is_empty(),
        "VM {vmid} left traces: {left:?}\nlog:\n{}",
        lab.log()
    );
    assert!(!Path::new(&lab.data_dir().join(format!("qemu/{vmid}"))).exists());
}

/// `sandbox ssh` into the VM's own sshd (port 22), started by the image because the profile's
/// key reached `authorized_keys`; and `forward --stdio` shows sshd's banner.
fn ssh_into_the_vm(lab: &NetLab, v: &str, key: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let out = lab.cli(&[
            "sandbox",
            "ssh",
            v,
            "-i",
            key.to_str().expect("path"),
            "--",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=20",
            "echo",
            "via-ssh",
            "$(id -un)",
        ]);
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "via-ssh agent\n");
            break;
        }
        if Instant::now() > deadline {
            let diag = lab.cli(&[
                "sandbox",
                "exec",
                v,
                "--user",
                "root",
                "--",
                "sh",
                "-c",
                "ls -la /home/agent/.ssh; cat /home/agent/.ssh/authorized_keys; \
                 systemctl status --no-pager ssh.service agentlab-ssh-if-keys.service agent-runner.service; \
                 cloud-init status --long; grep -i -E 'ssh|users|agent' /var/log/cloud-init.log | tail -40",
            ]);
            panic!(
                "ssh into the VM failed: {}\ndiagnostics:\n{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&diag.stdout),
                String::from_utf8_lossy(&diag.stderr)
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let out = lab.cli_with_stdin(&["sandbox", "forward", v, "--stdio", "22"], b"");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("SSH-2.0-"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Exec round trips and copy rates into a QEMU VM (TCG here), printed for
/// docs/performance.md; never asserted (benchmarks hold targets).
fn channel_figures(lab: &NetLab, v: &str, machine: &str) {
    let mut times: Vec<Duration> = (0..15)
        .map(|_| {
            let t = Instant::now();
            let out = lab.cli(&["sandbox", "exec", v, "--", "true"]);
            assert!(out.status.success());
            t.elapsed()
        })
        .collect();
    times.sort();
    let big = lab.dir.path().join("big.bin");
    let data: Vec<u8> = (0..32u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data).expect("write");
    let t = Instant::now();
    let out = lab.cli(&[
        "sandbox",
        "cp",
        big.to_str().expect("p"),
        &format!("{v}:/tmp/big"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cp_in = t.elapsed();
    let back = lab.dir.path().join("back");
    let t = Instant::now();
    let out = lab.cli(&[
        "sandbox",
        "cp",
        &format!("{v}:/tmp/big/big.bin"),
        back.to_str().expect("p"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cp_out = t.elapsed();
    let copied = std::fs::read(back.join("big.bin"))
        .or_else(|_| std::fs::read(&back))
        .expect("read back");
    assert!(copied == data, "the round trip changed the file");
    let mib = |d: Duration| 32.0 / d.as_secs_f64();
    let echo = echo_round_trips(lab, v);
    let forward = forward_rate(lab, v);
    eprintln!(
        "{machine}: exec `true` (CLI process included) median {:?}, max {:?}; cp 32 MiB in {:.0} MiB/s, out {:.0} MiB/s; \
         1-byte echo through exec `cat` median {:?}, max {:?}; forward 32 MiB {:.0} MiB/s",
        times[times.len() / 2],
        times[times.len() - 1],
        mib(cp_in),
        mib(cp_out),
        echo[echo.len() / 2],
        echo[echo.len() - 1],
        mib(forward)
    );
}

/// One byte at a time through `sandbox exec -- cat`: the path of a keystroke in `shell`
/// (stdin frame → channel → guest → stdout frame) without the terminal. Sorted times.
fn echo_round_trips(lab: &NetLab, v: &str) -> Vec<Duration> {
    use std::io::{Read as _, Write as _};
    let mut child = std::process::Command::new(harness::bin("agentlab"))
        .args([
            "--socket",
            lab.socket.to_str().expect("p"),
            "sandbox",
            "exec",
            v,
            "--",
            "cat",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut byte = [0u8; 1];
    let mut times = Vec::new();
    for i in 0..21u8 {
        let t = Instant::now();
        stdin.write_all(&[b'a' + i]).expect("write");
        stdin.flush().expect("flush");
        stdout.read_exact(&mut byte).expect("echo");
        assert_eq!(byte[0], b'a' + i);
        if i > 0 {
            times.push(t.elapsed());
        }
    }
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    times.sort();
    times
}

/// 32 MiB from a TCP server in the VM through `sandbox forward --stdio`.
fn forward_rate(lab: &NetLab, v: &str) -> Duration {
    let server = "import socket;s=socket.socket();\
                  s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);\
                  s.bind(('127.0.0.1',9009));s.listen(1);c,_=s.accept();\
                  c.sendall(b'x'*(32<<20));c.close()";
    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--",
        "sh",
        "-c",
        &format!("setsid -f python3 -c \"{server}\" </dev/null >/dev/null 2>&1"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = Instant::now();
        let out = lab.cli_with_stdin(&["sandbox", "forward", v, "--stdio", "9009"], b"");
        if out.stdout.len() == 32 << 20 {
            return t.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "forward got {} bytes: {}",
            out.stdout.len(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
