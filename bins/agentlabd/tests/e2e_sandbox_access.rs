//! `agentlab sandbox exec|shell|cp|forward` end to end on the local backend: the real
//! daemon, the real CLI and the real `agent-runner` as the sandbox's guest agent, connected
//! over its channel (docs/sandbox-access.md).
//!
//! Privileged like the other local tests (root, bwrap, ip, nft, nsenter); without them the
//! tests print `SKIP: …` (or panic under `CI`). The CLI's forward listens on the machine's
//! loopback and the test connects there only.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/netlab.rs"]
mod netlab;

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netlab::{LabOptions, NetLab, privileged};
use sha2::{Digest as _, Sha256};

const PROFILE: &str = "name: dev\ntemplate_vmid: 9000\nnetwork:\n  bridge: {bridge}\n  mode: nat\n\
    resources:\n  cores: 1\n  memory_mb: 1024\nbehavior:\n  ttl_minutes_default: 30\n  keepalive_default: true\n\
    agent:\n  command: \"true\"\n";

/// A READY sandbox whose guest agent has connected its channel.
fn sandbox(lab: &NetLab) -> String {
    let sb = lab.json(&["sandbox", "new", "--profile", "dev", "--wait"]);
    let vmid = sb["vmid"].as_u64().expect("vmid").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = lab.cli(&["sandbox", "exec", &vmid, "--", "true"]);
        if out.status.success() {
            return vmid;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            Instant::now() < deadline,
            "the guest agent never connected: {err}\nlog:\n{}",
            lab.log()
        );
        assert!(
            err.contains("agent_not_connected") || err.contains("not connected"),
            "{err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sha_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).expect("open");
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).expect("read");
    hex::encode(h.finalize())
}

#[test]
fn exec_streams_codes_stdin_signals_timeouts_and_users() {
    if !privileged() {
        return;
    }
    let lab = NetLab::start(PROFILE, |_| Vec::new());
    let vmid = sandbox(&lab);
    let v = vmid.as_str();

    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).contains("err"), "{}", text(&out.stderr));

    let out = lab.cli_with_stdin(&["sandbox", "exec", v, "--", "cat"], b"through stdin\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "through stdin\n");

    // 64 MiB without loss or deadlock.
    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--",
        "head",
        "-c",
        "67108864",
        "/dev/zero",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 64 << 20);

    let out = lab.cli(&["sandbox", "exec", v, "--", "id", "-u"]);
    assert_eq!(text(&out.stdout).trim(), "1000", "{}", text(&out.stderr));
    // The local backend runs everything in the sandbox as uid 1000 without capabilities:
    // root is not available, and the refusal says why.
    let out = lab.cli(&["sandbox", "exec", v, "--user", "root", "--", "id", "-u"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("root"), "{}", text(&out.stderr));
    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--env",
        "GREETING=hi there",
        "--cwd",
        "/tmp",
        "--",
        "sh",
        "-c",
        "echo \"$GREETING\" in $(pwd)",
    ]);
    assert_eq!(
        text(&out.stdout),
        "hi there in /tmp\n",
        "{}",
        text(&out.stderr)
    );

    // A timeout stops the command and says so.
    let began = Instant::now();
    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--time-limit",
        "1",
        "--",
        "sleep",
        "60",
    ]);
    assert!(began.elapsed() < Duration::from_secs(30));
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("time-limit"),
        "{}",
        text(&out.stderr)
    );
    // The issue's spelling, `--timeout`, limits the command the same way.
    let began = Instant::now();
    let out = lab.cli(&["sandbox", "exec", v, "--timeout", "1", "--", "sleep", "60"]);
    assert!(began.elapsed() < Duration::from_secs(30));
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("time limit"),
        "{}",
        text(&out.stderr)
    );

    // Ctrl-C (SIGINT to the CLI) reaches the remote process group: 130.
    let child = Command::new(harness::bin("agentlab"))
        .arg("--socket")
        .arg(&lab.socket)
        .args(["sandbox", "exec", v, "--", "sleep", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(2));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));

    // Two at once.
    let a = std::thread::scope(|s| {
        let h1 =
            s.spawn(|| lab.cli(&["sandbox", "exec", v, "--", "sh", "-c", "sleep 1; echo one"]));
        let h2 =
            s.spawn(|| lab.cli(&["sandbox", "exec", v, "--", "sh", "-c", "sleep 1; echo two"]));
        (h1.join().expect("one"), h2.join().expect("two"))
    });
    assert_eq!(text(&a.0.stdout), "one\n");
    assert_eq!(text(&a.1.stdout), "two\n");

    // Every stream is on the sandbox's record, without argument values.
    let events = lab.json(&["logs", v]);
    let all = events.to_string();
    assert!(
        all.contains("stream_opened") && all.contains("stream_closed"),
        "{all}"
    );
    assert!(
        !all.contains("hi there"),
        "an argument value reached the events"
    );

    // Gone: a clear error.
    let out = lab.cli(&["sandbox", "destroy", v]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lab.cli(&["sandbox", "exec", v, "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("sandbox_gone") || text(&out.stderr).contains("destroyed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn cp_round_trips_a_large_file_and_a_tree_and_forward_serves_parallel_connections() {
    if !privileged() {
        return;
    }
    let lab = NetLab::start(PROFILE, |_| Vec::new());
    let vmid = sandbox(&lab);
    let v = vmid.as_str();
    let work = tempfile::tempdir().expect("dir");

    // 100 MiB of non-repeating bytes.
    let big = work.path().join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).expect("create"));
        let mut h = Sha256::new();
        for i in 0u64..(100 << 20) / 32 {
            h.update(i.to_le_bytes());
            f.write_all(&h.clone().finalize()).expect("write");
        }
    }
    let want = sha_file(&big);
    let dst = format!("{v}:/home/agent/in");
    let out = lab.cli(&["sandbox", "cp", big.to_str().expect("path"), &dst]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--",
        "sha256sum",
        "/home/agent/in/big.bin",
    ]);
    assert!(
        text(&out.stdout).starts_with(&want),
        "{}",
        text(&out.stdout)
    );
    let back = work.path().join("back");
    let out = lab.cli(&[
        "sandbox",
        "cp",
        &format!("{v}:/home/agent/in/big.bin"),
        back.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha_file(&back.join("big.bin")), want);

    // A tree with modes.
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    std::fs::write(tree.join("run.sh"), "#!/bin/sh\necho ran\n").expect("write");
    std::fs::set_permissions(tree.join("run.sh"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::write(tree.join("sub/private"), "secret-ish").expect("write");
    std::fs::set_permissions(
        tree.join("sub/private"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let out = lab.cli(&[
        "sandbox",
        "cp",
        tree.to_str().expect("path"),
        &format!("{v}:/home/agent"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lab.cli(&["sandbox", "exec", v, "--", "/home/agent/tree/run.sh"]);
    assert_eq!(text(&out.stdout), "ran\n", "{}", text(&out.stderr));
    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--",
        "stat",
        "-c",
        "%a %u",
        "/home/agent/tree/sub/private",
    ]);
    assert_eq!(text(&out.stdout), "600 1000\n", "{}", text(&out.stderr));
    let tree_back = work.path().join("tree-back");
    let out = lab.cli(&[
        "sandbox",
        "cp",
        &format!("{v}:/home/agent/tree"),
        tree_back.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(tree_back.join("tree/sub/private")).expect("read"),
        "secret-ish"
    );
    let mode = std::fs::metadata(tree_back.join("tree/run.sh"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);

    // Missing paths are clear errors.
    let out = lab.cli(&[
        "sandbox",
        "cp",
        &format!("{v}:/nonexistent/file"),
        tree_back.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/file"),
        "{}",
        text(&out.stderr)
    );

    // Forward: an HTTP server in the sandbox, 20 connections at once through the CLI.
    std::fs::write(
        work.path().join("index.html"),
        "hello through the channel\n",
    )
    .expect("write");
    let out = lab.cli(&[
        "sandbox",
        "cp",
        work.path().join("index.html").to_str().expect("p"),
        &format!("{v}:/home/agent/www"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--cwd",
        "/home/agent/www",
        "--",
        "sh",
        "-c",
        // Detached, with its output away from the exec's (closed) pipes.
        "setsid -f python3 -m http.server --bind 127.0.0.1 18080 </dev/null >/dev/null 2>&1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut fwd = Command::new(harness::bin("agentlab"))
        .arg("--socket")
        .arg(&lab.socket)
        .args(["sandbox", "forward", v, &format!("{port}:18080")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn forward");
    let mut first = [0u8; 10];
    fwd.stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("banner");
    assert_eq!(&first, b"Forwarding");
    let get = || -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
        s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    };
    // The server may still be starting.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get().is_some_and(|b| b.contains("hello through the channel")) {
        if Instant::now() > deadline {
            let inside = lab.cli(&[
                "sandbox", "exec", v, "--", "python3", "-c",
                "import urllib.request as u; print(u.urlopen('http://127.0.0.1:18080/index.html').read())",
            ]);
            let ps = lab.cli(&["sandbox", "exec", v, "--", "ps", "ax"]);
            let _ = fwd.kill();
            let fwd_out = fwd.wait_with_output().expect("forward output");
            panic!(
                "the forwarded server never answered\ninside: {} {}\nps: {}\nforward stderr: {}\nlog:\n{}",
                text(&inside.stdout),
                text(&inside.stderr),
                text(&ps.stdout),
                text(&fwd_out.stderr),
                lab.log()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let answers: Vec<Option<String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20).map(|_| s.spawn(get)).collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    for a in &answers {
        assert!(
            a.as_deref()
                .is_some_and(|b| b.contains("hello through the channel")),
            "{a:?}"
        );
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(fwd.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("kill");
    let status = fwd.wait().expect("wait");
    assert!(status.success(), "forward did not end cleanly on Ctrl-C");
}

#[test]
fn shell_runs_in_a_terminal_resizes_and_exits_with_the_shells_code() {
    if !privileged() {
        return;
    }
    let lab = NetLab::start(PROFILE, |_| Vec::new());
    let vmid = sandbox(&lab);
    // Drive the CLI through a real PTY (python's pty module), typing as a person would.
    let driver = r#"
import os, pty, sys, time, select, struct, fcntl, termios, signal
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
signal.signal(signal.SIGALRM, lambda *a: (os.kill(pid, signal.SIGKILL)))
signal.alarm(60)
def winsize(rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    os.kill(pid, signal.SIGWINCH)
out = b""
def pump(secs):
    global out
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                b = os.read(fd, 65536)
            except OSError:
                return
            if not b:
                return
            out += b
winsize(30, 100)
pump(3)
os.write(fd, b"echo typed-$((40+2))\r")
pump(2)
winsize(40, 132)
pump(1)
os.write(fd, b"stty size\r")
pump(2)
os.write(fd, b"exit 5\r")
pump(5)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.stdout.write("\nEXIT=%d\n" % os.waitstatus_to_exitcode(status))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(driver)
        .arg(harness::bin("agentlab"))
        .arg("--socket")
        .arg(&lab.socket)
        .args(["sandbox", "shell", &vmid])
        .output()
        .expect("python3");
    let t = text(&out.stdout);
    assert!(t.contains("typed-42"), "{t}\n{}", text(&out.stderr));
    assert!(
        t.contains("40 132"),
        "the resize did not reach the shell: {t}"
    );
    assert!(t.contains("EXIT=5"), "{t}");
}

#[test]
fn ssh_reaches_an_ssh_server_in_the_sandbox_through_the_channel_and_forward_stdio_pipes() {
    if !privileged() {
        return;
    }
    if !Path::new("/usr/sbin/sshd").exists() || !Path::new("/usr/bin/ssh-keygen").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install openssh-server and openssh-client"
        );
        eprintln!("SKIP: no /usr/sbin/sshd or ssh-keygen (install openssh-server)");
        return;
    }
    // Keys come from the daemon config and the profile; the runner writes them into the
    // agent's ~/.ssh/authorized_keys (the local backend has no cloud-init).
    let work = tempfile::tempdir().expect("dir");
    let keys = work.path().join("ssh");
    std::fs::create_dir_all(&keys).expect("mkdir");
    for name in ["host_key", "client", "daemon_client"] {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(keys.join(name))
            .status()
            .expect("ssh-keygen");
        assert!(ok.success());
    }
    let public = |name: &str| {
        std::fs::read_to_string(keys.join(format!("{name}.pub")))
            .expect("pub")
            .trim()
            .to_owned()
    };
    let profile = format!("{PROFILE}ssh_public_keys:\n  - \"{}\"\n", public("client"));
    let opts = LabOptions {
        extra_config: format!("ssh_public_keys:\n  - \"{}\"\n", public("daemon_client")),
        ..LabOptions::default()
    };
    let lab = NetLab::start_with(&profile, |_| Vec::new(), &opts);
    let vmid = sandbox(&lab);
    let v = vmid.as_str();
    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--",
        "cat",
        "/home/agent/.ssh/authorized_keys",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{}\n{}\n", public("daemon_client"), public("client")),
        "the daemon's keys, then the profile's"
    );
    // The client keys stay on the host; only the server's files go into the sandbox.
    let client_key = work.path().join("client");
    let daemon_key = work.path().join("daemon_client");
    std::fs::rename(keys.join("client"), &client_key).expect("mv");
    std::fs::rename(keys.join("daemon_client"), &daemon_key).expect("mv");
    std::fs::write(
        keys.join("sshd_config"),
        "Port 2222\nListenAddress 127.0.0.1\nHostKey /home/agent/ssh/host_key\n\
         PidFile /home/agent/ssh/sshd.pid\n\
         UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
    )
    .expect("config");
    let out = lab.cli(&[
        "sandbox",
        "cp",
        keys.to_str().expect("p"),
        &format!("{v}:/home/agent"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // An unprivileged sshd for the agent user, as a person debugging the sandbox might run.
    let out = lab.cli(&[
        "sandbox",
        "exec",
        v,
        "--",
        "sh",
        "-c",
        "mkdir -p /run/sshd 2>/dev/null; setsid -f /usr/sbin/sshd -D -e -f /home/agent/ssh/sshd_config </dev/null >/home/agent/ssh/log 2>&1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for key in [&client_key, &daemon_key] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let out = loop {
            let out = lab.cli(&[
                "sandbox",
                "ssh",
                v,
                "-p",
                "2222",
                "-i",
                key.to_str().expect("p"),
                "--",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "echo",
                "via-ssh",
                "$((6*7))",
            ]);
            if out.status.success() || Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let log = lab.cli(&["sandbox", "exec", v, "--", "cat", "/home/agent/ssh/log"]);
        assert!(
            out.status.success(),
            "ssh with {} failed: {}\nsshd log: {}",
            key.display(),
            text(&out.stderr),
            text(&log.stdout)
        );
        assert_eq!(text(&out.stdout), "via-ssh 42\n");
    }

    // forward --stdio alone: the SSH banner comes back on stdout.
    let out = lab.cli_with_stdin(&["sandbox", "forward", v, "--stdio", "2222"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("SSH-2.0-"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn mcp_exec_write_file_and_read_file_reach_into_the_sandbox() {
    if !privileged() || !harness::python_mcp_available() {
        return;
    }
    let lab = NetLab::start(PROFILE, |_| Vec::new());
    let vmid = sandbox(&lab);
    let script = lab.dir.path().join("mcp_sandbox_client.py");
    std::fs::write(&script, include_str!("e2e/mcp_sandbox_client.py")).expect("script");
    let out = Command::new("python3")
        .arg(&script)
        .arg(harness::bin("agentlab"))
        .arg(&lab.socket)
        .arg(&vmid)
        .output()
        .expect("python3");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "client failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nlog:\n{}",
        lab.log()
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: stdout:\n{stdout}\nstderr:\n{stderr}"));
    let ctx = || format!("{v:#}\nstderr:\n{stderr}");

    // A non-zero exit is a normal result with both streams.
    let r = &v["exec_exit"];
    assert_eq!(r["is_error"], false, "{}", ctx());
    assert_eq!(r["json"]["exit_code"], 7, "{}", ctx());
    assert_eq!(r["json"]["stdout"], "out\n");
    assert_eq!(r["json"]["stderr"], "err\n");
    assert_eq!(r["json"]["timed_out"], false);
    assert_eq!(
        v["exec_stdin"]["json"]["stdout"],
        "through stdin\n",
        "{}",
        ctx()
    );
    assert_eq!(
        v["exec_env"]["json"]["stdout"],
        "hi there in /tmp\n",
        "{}",
        ctx()
    );

    // write_file then read_file: the same bytes, a new file of the agent user's, mode 0644.
    let content = "héllo\nfrom mcp\n";
    let w = &v["write_file"];
    assert_eq!(w["is_error"], false, "{}", ctx());
    assert_eq!(w["json"]["bytes"], content.len());
    assert_eq!(w["json"]["sha256"], hex::encode(Sha256::digest(content)));
    assert_eq!(v["read_file"]["is_error"], false, "{}", ctx());
    assert_eq!(v["read_file"]["text"], content, "{}", ctx());
    assert_eq!(
        v["exec_stat"]["json"]["stdout"],
        format!("644 1000 {}\n", content.len()),
        "{}",
        ctx()
    );
    let missing = &v["read_missing"];
    assert_eq!(missing["is_error"], true, "{}", ctx());
    assert!(
        missing["text"]
            .as_str()
            .unwrap_or_default()
            .contains("No such file or directory"),
        "{}",
        ctx()
    );
    let binary = v["read_binary"]["text"].as_str().unwrap_or_default();
    assert!(
        binary.contains("is a binary file: ") && binary.contains("sha256 "),
        "{}",
        ctx()
    );

    // After the sandbox is destroyed: an isError result with the API's code.
    assert_eq!(v["destroy"]["json"]["state"], "DESTROYED", "{}", ctx());
    let gone = &v["exec_gone"];
    assert_eq!(gone["is_error"], true, "{}", ctx());
    assert!(
        gone["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sandbox_gone: "),
        "{}",
        ctx()
    );
}
