//! Runs the real `agentlabd` and `agentlab` binaries: a daemon on a temporary socket with the
//! fake backend, and CLI invocations against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary next to `agentlabd` (built on demand when missing).
pub fn bin(name: &str) -> PathBuf {
    let daemon = PathBuf::from(env!("CARGO_BIN_EXE_agentlabd"));
    let path = daemon.with_file_name(name);
    if !path.exists() {
        // Benchmarks run from target/release: build the same profile there.
        let release = daemon.components().any(|c| c.as_os_str() == "release");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", name])
            .args(release.then_some("--release"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build");
        assert!(status.success(), "building {name} failed");
    }
    path
}

/// Path of an example of `agentlab-examples`, built (with every other example) when missing.
pub fn example(name: &str) -> PathBuf {
    let daemon = PathBuf::from(env!("CARGO_BIN_EXE_agentlabd"));
    let path = daemon.with_file_name("examples").join(name);
    if !path.exists() {
        let release = daemon.components().any(|c| c.as_os_str() == "release");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "agentlab-examples", "--examples"])
            .args(release.then_some("--release"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the examples failed");
    }
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

/// A daemon with its own temp dir, config and socket.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub guest_port: u16,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    /// Writes a config with `extra` YAML appended under `fake:` and starts the daemon.
    pub fn start(fake_extra: &str) -> Daemon {
        Self::start_with(None, fake_extra)
    }

    /// Like [`Daemon::start`], with `profiles` (YAML, `{dir}` replaced by the temp dir) as the
    /// only profiles when given.
    pub fn start_with(profiles: Option<&str>, fake_extra: &str) -> Daemon {
        Self::start_backend(
            profiles,
            "fake",
            &format!("fake:\n  work_dir: {{dir}}/vms\n{fake_extra}"),
        )
    }

    /// A daemon with `backend` and the backend's config section(s) `section` (YAML, `{dir}`
    /// replaced by the temp dir).
    pub fn start_backend(profiles: Option<&str>, backend: &str, section: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let profiles = match profiles {
            Some(yaml) => {
                let p = dir.path().join("profiles");
                std::fs::create_dir_all(&p).unwrap();
                std::fs::write(
                    p.join("test.yaml"),
                    yaml.replace("{dir}", &dir.path().display().to_string()),
                )
                .unwrap();
                p
            }
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles"),
        };
        let section = section.replace("{dir}", &dir.path().display().to_string());
        let socket = dir.path().join("run/agentlabd.sock");
        let port = free_port();
        let config = dir.path().join("config.yaml");
        let text = format!(
            "socket: {sock}\ndata_dir: {data}\nprofiles_dir: {profiles}\nbackend: {backend}\n\
             guest:\n  listen: 127.0.0.1:{port}\nnetwork:\n  manage_firewall: false\n\
             secrets:\n  dir: {dir}/secrets\n  identity: {dir}/age.key\n\
             log:\n  level: debug\nlimits:\n  allow_file_repos: true\n{section}",
            sock = socket.display(),
            data = dir.path().join("data").display(),
            profiles = profiles.display(),
            dir = dir.path().display(),
        );
        std::fs::write(&config, text).unwrap();
        let mut d = Daemon {
            dir,
            socket,
            config,
            guest_port: port,
            child: None,
        };
        d.spawn();
        d
    }

    /// (Re)starts the daemon process and waits for its socket to answer.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(bin("agentlabd"))
            .arg("--config")
            .arg(&self.config)
            .env("AGENTLAB_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if self.cli(&["status"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("agentlabd did not come up; log:\n{}", self.log());
    }

    /// Starts the daemon process with extra environment variables and returns without
    /// waiting (a fail point may end it at any time).
    pub fn spawn_env(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(bin("agentlabd"))
            .arg("--config")
            .arg(&self.config)
            .env("AGENTLAB_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Waits up to `timeout` for the daemon process to end; its exit status, or `None` (still
    /// running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Process id of the running daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("agentlabd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `agentlab --socket S args…`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_at(&self.socket, args)
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
}

/// Runs `agentlab --socket <socket> args…`.
pub fn cli_at(socket: &Path, args: &[&str]) -> Output {
    Command::new(bin("agentlab"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

/// Runs the CLI with `--json`, asserts success (printing `log()` otherwise) and parses stdout.
pub fn json_at(socket: &Path, args: &[&str], log: &dyn Fn() -> String) -> serde_json::Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = cli_at(socket, &full);
    assert!(
        out.status.success(),
        "agentlab {args:?} failed: {}\n{}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        log()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "agentlab {args:?}: bad JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Polls `sandbox show` (up to 60 s of real time: real processes) until `pred` holds.
pub fn wait_sandbox_at(
    socket: &Path,
    vmid: u64,
    pred: impl Fn(&serde_json::Value) -> bool,
    log: &dyn Fn() -> String,
) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let v = json_at(socket, &["sandbox", "show", &vmid.to_string()], log);
        if pred(&v) {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "sandbox {vmid} stuck: {v}\nlog:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c);
        }
    }
}

/// SIGTERM for a graceful stop, up to 5 s, then SIGKILL.
pub fn terminate(mut c: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .status();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// A repository with one empty commit under the daemon's dir; its `file://` URL.
pub fn empty_repo(d: &Daemon) -> String {
    named_repo(d, "repo")
}

/// Like [`empty_repo`], in the directory `name`.
pub fn named_repo(d: &Daemon, name: &str) -> String {
    let repo = d.dir.path().join(name);
    std::fs::create_dir_all(&repo).unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["commit", "-q", "--allow-empty", "-m", "init"],
    ] {
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    format!("file://{}", repo.display())
}

/// The PVE schema the simulator validates against, or `None` (printed `SKIP:`) when it is
/// missing outside CI; panics under `CI`.
pub fn pve_schema_or_skip() -> Option<PathBuf> {
    let schema = agentlab_pve::sim::default_schema_path();
    if schema.exists() {
        return Some(schema);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "PVE schema missing at {} (required in CI)",
        schema.display()
    );
    eprintln!("SKIP: PVE schema not found at {}", schema.display());
    None
}

/// The daemon config's `pve:` section for the simulator `sim`: its URL and token, `node`
/// (`pve1`, `auto`, …) and `storage`.
#[allow(dead_code)]
pub fn sim_pve_section(sim: &agentlab_pve::sim::Simulator, node: &str, storage: &str) -> String {
    format!(
        "pve:\n  url: {url}\n  node: {node}\n  token_id: {id}\n  token_secret: {secret}\n  storage: {storage}\n",
        url = sim.url(),
        id = sim.config().token_id,
        secret = sim.config().token_secret,
    )
}

/// Makes the simulator's "boot" run the workspace's real `agent-runner` with the bootstrap
/// file written through the simulated guest agent, each VM in its own directory under `vms`.
#[allow(dead_code)]
pub fn boot_runs_the_runner(sim: &agentlab_pve::sim::Simulator, vms: &Path) {
    let hook = agentlab_core::fake::boot::ProcessBootHook::agent_runner(
        vms,
        bin("agent-runner").display().to_string(),
    );
    sim.set_boot_hook(agentlab_pve::sim::process_boot_hook(std::sync::Arc::new(
        hook,
    )));
}

/// Whether the Python MCP SDK is importable; without it a test skips, except under `CI`,
/// which must install it (`.ci/run` does).
#[allow(dead_code)]
pub fn python_mcp_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI must install the Python mcp SDK (pip install mcp)");
    }
    if !ok {
        println!("SKIP: the Python MCP SDK is not installed (python3 -m pip install mcp)");
    }
    ok
}
