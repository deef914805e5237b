//! Boot hooks for [`super::FakeHypervisor`]: what "the guest" does when a fake VM starts.
//!
//! A [`BootHook`] hears about starts (with the bootstrap data the engine delivered), stops and
//! destroys of VMs the fake created. [`ProcessBootHook`] turns a fake VM into a local process:
//! on start it writes the bootstrap data to `<work_dir>/<vmid>/bootstrap.json` (mode 0600,
//! written atomically) and spawns a configured program — typically the real `agent-runner` —
//! in its own process group, with stdout and stderr appended to `<work_dir>/<vmid>/runner.log`.
//! On stop it sends SIGTERM to the group, waits up to the grace period, then SIGKILL; on
//! destroy it also removes `<work_dir>/<vmid>`. The group id is also kept in
//! `<work_dir>/<vmid>/runner.pid`, so a hook in a restarted process (a daemon killed with
//! SIGKILL, using [`super::FakeHypervisor::persistent`]) can still stop a program it did not
//! spawn. Dropping the hook kills every program it spawned. The token only ever travels in the file, never
//! in argv, the environment or the log.
//!
//! There is no isolation at all: the "guest" runs with the test's privileges.

use std::collections::HashMap;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use std::{fmt, fs};

use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::hypervisor::{BootstrapData, VmSpec};
use crate::ids::Vmid;

/// Delivered to [`BootHook::on_start`] when a fake VM powers on.
#[derive(Debug, Clone, PartialEq)]
pub struct BootEvent {
    /// The VM.
    pub vmid: Vmid,
    /// Bootstrap data passed to `start`, if any (a restart may carry none).
    pub bootstrap: Option<BootstrapData>,
    /// The VM's last spec.
    pub spec: VmSpec,
}

/// Why a boot hook could not start the guest.
#[derive(Debug, thiserror::Error)]
pub enum BootHookError {
    /// A file or directory could not be written.
    #[error("Cannot write {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The program could not be spawned.
    #[error("Cannot start {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Anything else.
    #[error("Boot hook failed: {0}")]
    Other(String),
}

/// Plays the guest for a [`super::FakeHypervisor`]. Called from a blocking thread.
pub trait BootHook: Send + Sync + fmt::Debug {
    /// The VM has just gone to running; an error makes `start` fail and the VM stay stopped.
    fn on_start(&self, event: &BootEvent) -> Result<(), BootHookError>;
    /// The VM was running and is being stopped within `grace`.
    fn on_stop(&self, vmid: Vmid, grace: Duration);
    /// The VM was destroyed (called whether or not it was running).
    fn on_destroy(&self, vmid: Vmid) {
        self.on_stop(vmid, Duration::ZERO);
    }
}

/// A [`BootHook`] that runs a local program per VM; see the [module docs](self).
///
/// The program and its arguments are templates: `{bootstrap}` becomes the bootstrap file's
/// path, `{dir}` the VM's directory and `{vmid}` the VM id.
#[derive(Debug)]
pub struct ProcessBootHook {
    work_dir: PathBuf,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    children: Mutex<HashMap<Vmid, Child>>,
}

/// How often [`ProcessBootHook`] polls a child that should exit.
const POLL: Duration = Duration::from_millis(20);

impl ProcessBootHook {
    /// Runs `program args…` (templates) per VM, under `work_dir/<vmid>`.
    pub fn new<S: Into<String>>(
        work_dir: impl Into<PathBuf>,
        program: impl Into<String>,
        args: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            work_dir: work_dir.into(),
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            children: Mutex::new(HashMap::new()),
        }
    }

    /// Runs the `agent-runner` binary at `runner` with `--bootstrap {bootstrap} --secrets-dir
    /// {dir}/secrets --allow-non-tmpfs --work-dir {dir}/work`.
    pub fn agent_runner(work_dir: impl Into<PathBuf>, runner: impl Into<String>) -> Self {
        let args = [
            "--bootstrap",
            "{bootstrap}",
            "--secrets-dir",
            "{dir}/secrets",
            "--allow-non-tmpfs",
            "--work-dir",
            "{dir}/work",
            // The channel key goes to the VM's directory, not the host's /run/agentlab.
            "--channel-file",
            "{dir}/channel.json",
        ];
        Self::new(work_dir, runner, args)
    }

    /// Adds an environment variable (value is a template) for every spawned program.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The VM's directory, `<work_dir>/<vmid>`.
    pub fn vm_dir(&self, vmid: Vmid) -> PathBuf {
        self.work_dir.join(vmid.to_string())
    }

    /// Where the bootstrap data is written.
    pub fn bootstrap_path(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("bootstrap.json")
    }

    /// Where the program's stdout and stderr go.
    pub fn log_path(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("runner.log")
    }

    /// Whether the VM's program is still running.
    pub fn is_running(&self, vmid: Vmid) -> bool {
        let mut children = self.lock();
        children
            .get_mut(&vmid)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits until the VM's program exits; `None` when no program was started for it.
    pub async fn wait_for_exit(&self, vmid: Vmid) -> Option<ExitStatus> {
        loop {
            {
                let mut children = self.lock();
                let child = children.get_mut(&vmid)?;
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(status);
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Vmid, Child>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expand(&self, template: &str, vmid: Vmid) -> String {
        let dir = self.vm_dir(vmid);
        template
            .replace("{bootstrap}", &self.bootstrap_path(vmid).to_string_lossy())
            .replace("{dir}", &dir.to_string_lossy())
            .replace("{vmid}", &vmid.to_string())
    }

    fn write_bootstrap(&self, vmid: Vmid, data: &BootstrapData) -> Result<(), BootHookError> {
        let path = self.bootstrap_path(vmid);
        let tmp = path.with_extension("json.tmp");
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| BootHookError::Io { path, source }
        };
        let json = Zeroizing::new(
            serde_json::to_vec(data).map_err(|e| BootHookError::Other(e.to_string()))?,
        );
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    fn spawn(&self, vmid: Vmid) -> Result<Child, BootHookError> {
        let log_path = self.log_path(vmid);
        let log = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(|source| BootHookError::Io {
                path: log_path.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| BootHookError::Io {
            path: log_path.clone(),
            source,
        })?;
        let program = self.expand(&self.program, vmid);
        let mut cmd = Command::new(&program);
        cmd.args(self.args.iter().map(|a| self.expand(a, vmid)))
            .envs(self.env.iter().map(|(k, v)| (k, self.expand(v, vmid))))
            .current_dir(self.vm_dir(vmid))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        cmd.spawn()
            .map_err(|source| BootHookError::Spawn { program, source })
    }
}

/// Sends `signal` to the process group `pgid`; whether `kill` succeeded (the group exists).
fn signal_group(pgid: u32, signal: &str) -> bool {
    let group = format!("-{pgid}");
    let result = Command::new("kill")
        .args([signal, "--", group.as_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match result {
        Ok(status) => status.success(),
        Err(err) => {
            warn!(error = %err, "cannot run kill");
            false
        }
    }
}

/// TERM, wait up to `grace`, KILL the child's group; always reaps the child.
fn terminate(mut child: Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(None)) {
        signal_group(child.id(), "-TERM");
        let deadline = Instant::now() + grace;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }
    signal_group(child.id(), "-KILL");
    let _ = child.kill();
    let _ = child.wait();
}

/// TERM, wait up to `grace`, KILL a group this process did not spawn (left by an earlier
/// process using the same work directory).
fn terminate_orphan(pgid: u32, grace: Duration) {
    if signal_group(pgid, "-TERM") {
        let deadline = Instant::now() + grace;
        while signal_group(pgid, "-0") && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        signal_group(pgid, "-KILL");
    }
}

impl ProcessBootHook {
    fn pid_path(&self, vmid: Vmid) -> PathBuf {
        self.vm_dir(vmid).join("runner.pid")
    }

    /// Stops the VM's program: our child if we have one, else the group named in
    /// `runner.pid` (a program started before a restart of the process hosting the fake).
    fn stop_guest(&self, vmid: Vmid, grace: Duration) {
        let child = self.lock().remove(&vmid);
        let pid_path = self.pid_path(vmid);
        if let Some(child) = child {
            terminate(child, grace);
            debug!(sandbox = %vmid, "fake guest stopped");
        } else if let Some(pgid) = fs::read_to_string(&pid_path)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|pgid| *pgid > 1)
        {
            terminate_orphan(pgid, grace);
            debug!(sandbox = %vmid, pgid, "orphaned fake guest stopped");
        }
        let _ = fs::remove_file(&pid_path);
    }
}

impl BootHook for ProcessBootHook {
    fn on_start(&self, event: &BootEvent) -> Result<(), BootHookError> {
        let vmid = event.vmid;
        self.stop_guest(vmid, Duration::ZERO);
        let dir = self.vm_dir(vmid);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| BootHookError::Io {
                path: dir.clone(),
                source,
            })?;
        if let Some(data) = &event.bootstrap {
            self.write_bootstrap(vmid, data)?;
        }
        let child = self.spawn(vmid)?;
        debug!(sandbox = %vmid, pid = child.id(), "fake guest started");
        let pid_path = self.pid_path(vmid);
        if let Err(err) = fs::write(&pid_path, child.id().to_string()) {
            warn!(sandbox = %vmid, error = %err, "cannot write runner.pid");
        }
        self.lock().insert(vmid, child);
        Ok(())
    }

    fn on_stop(&self, vmid: Vmid, grace: Duration) {
        self.stop_guest(vmid, grace);
    }

    fn on_destroy(&self, vmid: Vmid) {
        self.on_stop(vmid, Duration::ZERO);
        let dir = self.vm_dir(vmid);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => warn!(sandbox = %vmid, error = %err, "cannot remove fake guest directory"),
        }
    }
}

impl Drop for ProcessBootHook {
    fn drop(&mut self) {
        let children = self
            .children
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, child) in children.drain() {
            terminate(child, Duration::ZERO);
        }
    }
}
