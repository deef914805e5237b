//! A network lab for the `local` backend end to end: the real `agentlabd` runs inside a
//! test-created "router" network namespace (so its bridge, veths and nftables tables never touch
//! the machine's own namespace), with a `wan` namespace holding the TEST-NET "internet" server
//! 203.0.113.10 (and a git daemon serving the job's repository) behind the uplink `wan0`, and a
//! `lan` namespace holding 192.168.77.10 behind `lan0`. The daemon is started with
//! `nsenter --net=…` (network namespace only: it shares the host's mount namespace, so the
//! sandbox namespaces it creates under `/run/netns` and the cgroup hierarchy stay visible), and
//! the CLI talks to it over its Unix socket. `Drop` kills the daemon and the servers, removes
//! whatever sandboxes are left and deletes the namespaces, also when a test panics.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use agentlab_net::netns::{Netns, exec_in, ip, link_exists};

use crate::harness::{bin, cli_at, json_at, terminate, wait_sandbox_at};

/// The "internet" server (TEST-NET-3) in the `wan` namespace.
pub const WAN_IP: &str = "203.0.113.10";
/// The router's address on the uplink.
pub const WAN_GW: &str = "203.0.113.1";
/// The LAN server in the `lan` namespace.
pub const LAN_IP: &str = "192.168.77.10";
/// The router's address on the LAN.
pub const LAN_GW: &str = "192.168.77.1";
/// Port of the banner servers (wan, lan).
pub const SERVER_PORT: u16 = 80;
/// A host service on the router that sandboxes must not reach (on the gateway address).
pub const HOST_PORT: u16 = 8006;
/// The guest listener's port.
pub const GUEST_PORT: u16 = 8844;
/// The cgroup v2 root the local backend uses by default.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The daemon's log message once its start-up reconcile is done.
const RECONCILED: &str = "reconciled state with the hypervisor";

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn nft_path() -> Option<PathBuf> {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The privileged-test gate: `true` to run; panics under `CI` when a prerequisite is missing,
/// otherwise prints `SKIP: <reason>` and returns `false`.
pub fn privileged() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let reason = if !root {
        Some("not running as root")
    } else if !Path::new("/usr/bin/bwrap").exists() {
        Some("bwrap not installed (apt-get install bubblewrap)")
    } else if nft_path().is_none() {
        Some("nft not installed (apt-get install nftables)")
    } else if !have("ip", "-V") {
        Some("ip not installed (apt-get install iproute2)")
    } else if !have("nsenter", "--version") {
        Some("nsenter not installed (apt-get install util-linux)")
    } else if !have("git", "--version") || !have("python3", "--version") {
        Some("git or python3 not installed")
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("privileged test prerequisites missing under CI: {r}")
        }
        Some(r) => {
            eprintln!("SKIP: {r}");
            false
        }
    }
}

/// Whether the local backend can apply memory limits (a writable `memory` controller, cgroup
/// v2 or v1).
pub fn cgroup_memory_usable() -> Result<(), String> {
    let root = Path::new(CGROUP_ROOT);
    // cgroup v1: the memory controller's own hierarchy (the local backend supports both).
    let v1 = root.join("memory/cgroup.procs");
    if !root.join("cgroup.controllers").exists()
        && std::fs::OpenOptions::new().append(true).open(&v1).is_ok()
    {
        return Ok(());
    }
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
        .map_err(|e| format!("{CGROUP_ROOT} is neither cgroup v2 nor v1 with memory ({e})"))?;
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Err(format!(
            "the memory controller is not available in {CGROUP_ROOT} ({})",
            controllers.trim()
        ));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("cgroup.subtree_control"))
        .map(drop)
        .map_err(|e| format!("{CGROUP_ROOT}/cgroup.subtree_control not writable ({e})"))
}

fn must_ip(ns: Option<&str>, args: &[&str]) {
    ip(ns, args).unwrap_or_else(|e| panic!("ip {ns:?} {}: {e}", args.join(" ")));
}

/// A tiny TCP server: accepts forever and sends `banner\n` to each connection.
const BANNER_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(sys.argv[3].encode() + b"\n")
    except OSError:
        pass
    finally:
        c.close()
"#;

/// Port of the smart-HTTP git server in `wan` ([`NetLab::serve_git_http`]).
pub const GIT_HTTP_PORT: u16 = 8080;

/// A smart-HTTP git server: `git http-backend` as CGI behind HTTP Basic auth. Arguments:
/// project root, address, port, user, token. Request bodies may be chunked.
const GIT_HTTP_SERVER: &str = r#"
import base64, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
root, addr, port, user, token = sys.argv[1:6]
expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self): self.cgi()
    def do_POST(self): self.cgi()
    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""): pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()
    def cgi(self):
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        data = self.body()
        env = {"PATH": os.environ.get("PATH", ""), "GIT_PROJECT_ROOT": root,
               "GIT_HTTP_EXPORT_ALL": "1", "GIT_CONFIG_NOSYSTEM": "1", "HOME": root,
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(data)), "REMOTE_USER": user,
               "REMOTE_ADDR": self.client_address[0]}
        for h in ("Content-Encoding", "Git-Protocol"):
            if self.headers.get(h):
                env["HTTP_" + h.upper().replace("-", "_")] = self.headers[h]
        out = subprocess.run(["git", "http-backend"], input=data, env=env,
                             capture_output=True).stdout
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, payload = out.partition(sep)
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
srv = ThreadingHTTPServer((addr, int(port)), H)
print("ready", flush=True)
srv.serve_forever()
"#;

/// Options of [`NetLab::start_with`].
#[derive(Debug, Default, Clone)]
pub struct LabOptions {
    /// Sandbox ids (and addresses) in the lab's range; 3 when less.
    pub ids: u32,
    /// Appended to the daemon's config (top-level keys).
    pub extra_config: String,
    /// `vmid_range.quarantine_secs` (the daemon's default when `None`).
    pub quarantine_secs: Option<u32>,
    /// The config's `backend:` line and the backend's section (`{bridge}` replaced);
    /// `None`: the local backend with the workspace's `agent-runner`.
    pub backend: Option<String>,
}

/// Everything a test needs: namespaces, servers, the daemon's directory and process.
pub struct NetLab {
    /// Names are `al<pid>-<n>-…`.
    pub prefix: String,
    pub router: String,
    pub wan: String,
    pub lan: String,
    /// Agent bridge in the router namespace.
    pub bridge: String,
    /// `10.231.<x>` (the /24 without its last octet).
    pub subnet24: String,
    pub vmid_start: u32,
    pub vmid_end: u32,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub nft: PathBuf,
    /// The config's backend lines (`backend: …` and its section; `{bridge}` replaced).
    pub backend: String,
    daemon: Option<Child>,
    servers: Vec<Child>,
    namespaces: Vec<Netns>,
}

impl NetLab {
    /// Builds the namespaces and servers, writes the config (with `profiles` as the only
    /// profile file, `{bridge}`/`{dir}` replaced), sets up the secrets bundle and the git
    /// repository holding the `files(&lab)` (name, content) pairs, and starts the daemon.
    pub fn start(profiles: &str, files: impl Fn(&NetLab) -> Vec<(String, String)>) -> NetLab {
        Self::start_with(profiles, files, &LabOptions::default())
    }

    /// [`NetLab::start`] with another backend, a larger vmid range or extra config.
    pub fn start_with(
        profiles: &str,
        files: impl Fn(&NetLab) -> Vec<(String, String)>,
        opts: &LabOptions,
    ) -> NetLab {
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("al{pid}-{n}");
        let names = ["router", "wan", "lan"].map(|s| format!("{prefix}-{s}"));
        let mut namespaces = Vec::new();
        for name in &names {
            namespaces.push(Netns::create(name).unwrap_or_else(|e| panic!("netns {name}: {e}")));
        }
        let [router, wan, lan] = names;
        // Unique per process and lab: no two concurrently running labs share a vmid
        // (namespace names `al-<vmid>` and cgroups are global) or a bridge name.
        let vmid_start = match opts.ids {
            0..=3 => 7_000_000 + (pid % 100_000) * 10 + (n % 3) * 3,
            // Large labs live above every small lab's range (ids are global names).
            _ => 8_000_000 + (pid % 10_000) * 100,
        };
        assert!(opts.ids <= 100, "at most 100 sandbox ids in a lab");
        let subnet24 = format!("10.231.{}", (pid + n) % 250 + 1);
        let mut lab = NetLab {
            bridge: format!("alb{}x{n}", pid % 1_000_000),
            prefix,
            router,
            wan,
            lan,
            subnet24,
            vmid_start,
            vmid_end: vmid_start + opts.ids.max(3) - 1,
            dir: tempfile::tempdir().unwrap(),
            socket: PathBuf::new(),
            config: PathBuf::new(),
            nft: nft_path().unwrap(),
            backend: opts.backend.clone().unwrap_or_else(|| {
                format!(
                    "backend: local\nlocal:\n  runner_path: {}\n  bridge: {{bridge}}\n",
                    bin("agent-runner").display()
                )
            }),
            daemon: None,
            servers: Vec::new(),
            namespaces,
        };
        lab.wire();
        lab.write_config(profiles, opts);
        lab.setup_secrets();
        let files = files(&lab);
        lab.setup_repo(&files);
        lab.spawn_daemon();
        lab
    }

    /// The gateway (bridge) address.
    pub fn gateway(&self) -> String {
        format!("{}.1", self.subnet24)
    }

    /// The address the engine gives `vmid` (subnet base + 2 + offset).
    pub fn sandbox_ip(&self, vmid: u64) -> String {
        format!(
            "{}.{}",
            self.subnet24,
            vmid - u64::from(self.vmid_start) + 2
        )
    }

    /// Where `git daemon` writes its pid.
    fn git_daemon_pid(&self) -> PathBuf {
        self.dir.path().join("git-daemon.pid")
    }

    /// The repository URL the sandboxes clone (git daemon in `wan`).
    pub fn repo_url(&self) -> String {
        format!("git://{WAN_IP}/repo")
    }

    fn wire(&mut self) {
        let (router, wan, lan) = (self.router.clone(), self.wan.clone(), self.lan.clone());
        for (ns, peer, addr, gw) in [
            (&wan, "wan0", WAN_IP, WAN_GW),
            (&lan, "lan0", LAN_IP, LAN_GW),
        ] {
            must_ip(
                Some(ns),
                &[
                    "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", &router,
                ],
            );
            must_ip(
                Some(ns),
                &["addr", "add", &format!("{addr}/24"), "dev", "eth0"],
            );
            must_ip(Some(ns), &["link", "set", "eth0", "up"]);
            must_ip(Some(ns), &["route", "add", "default", "via", gw]);
            must_ip(
                Some(&router),
                &["addr", "add", &format!("{gw}/24"), "dev", peer],
            );
            must_ip(Some(&router), &["link", "set", peer, "up"]);
        }
        // The "ISP": like a real host, the router has a default route out of the uplink.
        must_ip(Some(&router), &["route", "add", "default", "via", WAN_IP]);
        self.serve(&wan, WAN_IP, SERVER_PORT, "wan-banner");
        self.serve(&lan, LAN_IP, SERVER_PORT, "lan-banner");
        // On every router address, so also on the gateway once the daemon creates the bridge.
        self.serve(&router, "0.0.0.0", HOST_PORT, "host-banner");
    }

    fn serve(&mut self, ns: &str, addr: &str, port: u16, banner: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", BANNER_SERVER, addr])
            .arg(port.to_string())
            .arg(banner)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.servers.push(child);
        assert_eq!(
            line.trim(),
            "ready",
            "server {addr}:{port} in {ns} did not start"
        );
    }

    /// Connects from inside namespace `ns` (never from the machine's own namespace) and
    /// returns the banner, or `None`.
    pub fn fetch_from(&self, ns: &str, addr: &str, port: u16) -> Option<String> {
        let script = format!("exec 3<>/dev/tcp/{addr}/{port} && head -n1 <&3");
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "timeout", "3", "bash", "-c", &script])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn write_config(&mut self, profiles: &str, opts: &LabOptions) {
        let extra = &opts.extra_config;
        let quarantine = opts
            .quarantine_secs
            .map(|q| format!("  quarantine_secs: {q}\n"))
            .unwrap_or_default();
        let d = self.dir.path().to_owned();
        let pdir = d.join("profiles");
        std::fs::create_dir_all(&pdir).unwrap();
        let profiles = profiles
            .replace("{bridge}", &self.bridge)
            .replace("{dir}", &d.display().to_string());
        std::fs::write(pdir.join("test.yaml"), profiles).unwrap();
        self.socket = d.join("run/agentlabd.sock");
        self.config = d.join("config.yaml");
        let text = format!(
            "socket: {sock}\ndata_dir: {data}\nprofiles_dir: {pdir}\n{backend}\
             guest:\n  listen: {gw}:{GUEST_PORT}\n\
             vmid_range:\n  start: {start}\n  end: {end}\n{quarantine}\
             network:\n  bridge: {br}\n  subnet: {net}.0/24\n  gateway: {gw}\n  uplink: wan0\n  manage_firewall: true\n\
             secrets:\n  dir: {dir}/secrets\n  identity: {dir}/age.key\n\
             log:\n  level: debug\n{extra}",
            sock = self.socket.display(),
            data = self.data_dir().display(),
            pdir = pdir.display(),
            gw = self.gateway(),
            start = self.vmid_start,
            end = self.vmid_end,
            br = self.bridge,
            net = self.subnet24,
            backend = self.backend.replace("{bridge}", &self.bridge),
            dir = d.display(),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// The daemon's `data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `agentlab secrets <args>` on the lab's bundle store, `stdin` piped in.
    pub fn secrets(&self, args: &[&str], stdin: Option<&str>) {
        let dir = self.dir.path();
        let mut c = Command::new(bin("agentlab"))
            .arg("secrets")
            .arg("--dir")
            .arg(dir.join("secrets"))
            .arg("--identity")
            .arg(dir.join("age.key"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = c.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "secrets {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn setup_secrets(&self) {
        self.secrets(&["init"], None);
    }

    fn setup_repo(&mut self, files: &[(String, String)]) {
        let srv = self.dir.path().join("srv");
        let repo = srv.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .current_dir(&repo)
                .status()
                .unwrap();
            assert!(ok.success(), "git {args:?}");
        };
        git(&["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README.md"), "demo\n").unwrap();
        for (name, text) in files {
            std::fs::write(repo.join(name), text).unwrap();
        }
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "init"]);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.wan, "git", "daemon", "--export-all"])
            .arg(format!("--base-path={}", srv.display()))
            .arg(format!("--listen={WAN_IP}"))
            // Unlimited clients: the stress test clones 50 at once (git daemon refuses above 32).
            .args(["--port=9418", "--reuseaddr", "--max-connections=0"])
            .arg(format!("--pid-file={}", self.git_daemon_pid().display()))
            .arg(&srv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.push(child);
        let t0 = Instant::now();
        loop {
            let ok = Command::new("ip")
                .args(["netns", "exec", &self.wan, "git", "ls-remote", "-q"])
                .arg(self.repo_url())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            if ok {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "git daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The job repository's directory on the `wan` server (served by `git daemon` and, once
    /// [`NetLab::serve_git_http`] ran, over smart HTTP).
    pub fn server_repo(&self) -> PathBuf {
        self.dir.path().join("srv/repo")
    }

    /// Starts a push-capable smart-HTTP git server (`git http-backend` behind Basic auth for
    /// `user`/`token`) in `wan` on [`GIT_HTTP_PORT`]; returns the job repository's URL.
    pub fn serve_git_http(&mut self, user: &str, token: &str) -> String {
        let srv = self.dir.path().join("srv");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.wan, "python3", "-c", GIT_HTTP_SERVER])
            .arg(&srv)
            .arg(WAN_IP)
            .arg(GIT_HTTP_PORT.to_string())
            .args([user, token])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.servers.push(child);
        assert_eq!(line.trim(), "ready", "git http server did not start");
        format!("http://{WAN_IP}:{GIT_HTTP_PORT}/repo")
    }

    /// Downloads job `id`'s artifact bundle with the CLI and unpacks it into `<dir>/unpacked`.
    pub fn download_artifacts(&self, id: &str) -> PathBuf {
        let out_dir = self.dir.path().join("downloaded");
        std::fs::create_dir_all(&out_dir).unwrap();
        let out = out_dir.to_str().unwrap();
        let dl = self.cli(&["job", "artifacts", "download", id, "--out", out]);
        assert!(
            dl.status.success(),
            "{}",
            String::from_utf8_lossy(&dl.stderr)
        );
        let unpacked = self.dir.path().join("unpacked");
        std::fs::create_dir_all(&unpacked).unwrap();
        for entry in std::fs::read_dir(&out_dir).unwrap() {
            let ok = Command::new("tar")
                .arg("xzf")
                .arg(entry.unwrap().path())
                .arg("-C")
                .arg(&unpacked)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        unpacked
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agentlabd.log")).unwrap_or_default()
    }

    /// Starts `nsenter --net=/run/netns/<router> agentlabd --config …` and waits until it
    /// answers and has finished its start-up reconcile. (agentlabd serves the socket before
    /// its reconcile runs; a sandbox requested in between is failed as "agentlabd restarted
    /// while the sandbox was PROVISIONING", so the tests wait for the log line.)
    pub fn spawn_daemon(&mut self) {
        let reconciled = |lab: &NetLab| lab.log().matches(RECONCILED).count();
        let before = reconciled(self);
        self.launch_daemon(&[]);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if reconciled(self) > before && self.cli(&["status"]).status.success() {
                return;
            }
            if let Some(Ok(Some(status))) = self.daemon.as_mut().map(Child::try_wait) {
                panic!("agentlabd exited ({status}); log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("agentlabd did not come up; log:\n{}", self.log());
    }

    /// Starts the daemon with extra environment (e.g. `AGENTLAB_FAILPOINTS`) and waits only
    /// until its socket answers: a fail point may kill it at any time after.
    pub fn spawn_daemon_env(&mut self, env: &[(&str, &str)]) {
        self.launch_daemon(env);
        let t0 = Instant::now();
        while !self.cli(&["status"]).status.success() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "agentlabd did not answer; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn launch_daemon(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agentlabd.log"))
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.router))
            .arg("--")
            .arg(bin("agentlabd"))
            .arg("--config")
            .arg(&self.config)
            .env("AGENTLAB_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    /// The daemon's pid, while it runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// Waits up to `limit` for the daemon to exit; its status, or `None` if it still runs.
    pub fn wait_daemon_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Some(Ok(Some(status))) = self.daemon.as_mut().map(Child::try_wait) {
                self.daemon = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILLs the daemon (nsenter execs it, so the child is the daemon itself).
    pub fn kill_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn stop_daemon(&mut self) {
        if let Some(c) = self.daemon.take() {
            terminate(c);
        }
    }

    /// Runs `agentlab --socket S args…`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_at(&self.socket, args)
    }

    /// Runs `agentlab --socket S args…` with `input` on its stdin (then closed).
    pub fn cli_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = Command::new(bin("agentlab"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agentlab");
        let mut stdin = child.stdin.take().expect("stdin");
        // A command that exits early closes its stdin: that is not the test's failure.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().expect("wait")
    }

    /// Runs the CLI with `--json`, asserts success and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        json_at(&self.socket, args, &|| self.log())
    }

    /// Polls `sandbox show` until `pred` holds.
    pub fn wait_sandbox(
        &self,
        vmid: u64,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_sandbox_at(&self.socket, vmid, pred, &|| self.log())
    }

    /// `nft list table inet agentlab` in the router namespace.
    pub fn nft_table(&self) -> String {
        exec_in(
            &self.router,
            self.nft.to_str().unwrap(),
            &["list", "table", "inet", "agentlab"],
        )
        .unwrap_or_else(|e| panic!("nft list table inet agentlab: {e}"))
    }

    /// Every trace a sandbox leaves while it exists, as `(what, present)`.
    pub fn traces(&self, vmid: u64) -> Vec<(String, bool)> {
        let netns = format!("al-{vmid}");
        let listed = ip(None, &["netns", "list"]).unwrap_or_default();
        let in_list = listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some(netns.as_str()));
        let veth = format!("al{vmid}h");
        let sip = self.sandbox_ip(vmid);
        let table = self.nft_table();
        let in_table = table
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .any(|w| w == sip);
        // cgroup v2: one directory; v1: one per controller (memory stands for all).
        let v2 = Path::new(CGROUP_ROOT).join(format!("agentlab/{vmid}"));
        let v1 = Path::new(CGROUP_ROOT).join(format!("memory/agentlab/{vmid}"));
        let cgroup = if v1.parent().is_some_and(Path::exists) {
            v1
        } else {
            v2
        };
        let files = self.data_dir().join(format!("local/{vmid}"));
        vec![
            (format!("netns {netns} in `ip netns list`"), in_list),
            (
                format!("netns file /run/netns/{netns}"),
                Path::new("/run/netns").join(&netns).exists(),
            ),
            (
                format!("veth {veth} in {}", self.router),
                link_exists(Some(&self.router), &veth),
            ),
            (format!("{sip} in nft table inet agentlab"), in_table),
            (format!("cgroup {}", cgroup.display()), cgroup.exists()),
            (
                format!("per-sandbox files {}", files.display()),
                files.exists(),
            ),
        ]
    }

    /// Asserts that nothing of `vmid` is left.
    pub fn assert_no_traces(&self, vmid: u64) {
        let left: Vec<String> = self
            .traces(vmid)
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(what, _)| what)
            .collect();
        assert!(
            left.is_empty(),
            "sandbox {vmid} left traces after destroy: {left:?}\nlog:\n{}",
            self.log()
        );
    }

    /// The pids in the sandbox's network namespace, sorted.
    pub fn sandbox_pids(&self, vmid: u64) -> Vec<u32> {
        let text = ip(None, &["netns", "pids", &format!("al-{vmid}")]).unwrap_or_default();
        let mut pids: Vec<u32> = text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Removes whatever sandboxes of this lab's vmid range are left (after a failed test).
    fn cleanup_sandboxes(&self) {
        for vmid in self.vmid_start..=self.vmid_end {
            let netns = format!("al-{vmid}");
            if Path::new("/run/netns").join(&netns).exists() {
                if let Ok(pids) = ip(None, &["netns", "pids", &netns]) {
                    for pid in pids.split_whitespace() {
                        let _ = Command::new("kill").args(["-KILL", pid]).status();
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
                let _ = ip(None, &["netns", "del", &netns]);
            }
            let _ = std::fs::remove_dir(Path::new(CGROUP_ROOT).join(format!("agentlab/{vmid}")));
        }
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        self.stop_daemon();
        self.cleanup_sandboxes();
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        // `git daemon` runs as a forked `git-daemon` that outlives its parent: kill it by pid.
        if let Ok(pid) = std::fs::read_to_string(self.git_daemon_pid()) {
            let _ = Command::new("kill").arg("-KILL").arg(pid.trim()).status();
        }
        // `ip netns exec` servers may leave children; the namespaces go with `namespaces`.
        self.namespaces.clear();
    }
}

/// Parses `key=value` lines.
pub fn parse_kv(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}
