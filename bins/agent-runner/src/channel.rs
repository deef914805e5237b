//! The sandbox channel from the binary's side: the `channel` subcommand (the channel
//! process) and the job runner's supervision of it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use agentlab_guest::channel::ChannelConfig;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// `agent-runner channel`: waits for the channel file and serves the channel until
/// SIGTERM/SIGINT (or the parent's death).
pub fn serve(channel_file: &Path, passwd: PathBuf) -> ExitCode {
    if let Err(e) = agentlab_guest::privdrop::set_no_new_privs() {
        eprintln!("agent-runner channel: error: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
        tracing::warn!(error = %e, "cannot ask to be stopped with the runner");
    }
    let config = ChannelConfig {
        passwd,
        drop_helper: std::env::current_exe().ok(),
        ..ChannelConfig::default()
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agent-runner channel: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let cancel = CancellationToken::new();
    let result = rt.block_on(async {
        let stop = cancel.clone();
        tokio::spawn(async move {
            crate::wait_for_stop_signal().await;
            stop.cancel();
        });
        agentlab_guest::channel::serve_from_file(channel_file, config, cancel).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent-runner channel: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The job runner's channel process.
#[derive(Debug)]
pub struct Supervisor {
    file: PathBuf,
    passwd: PathBuf,
    child: Option<Child>,
}

impl Supervisor {
    /// Starts `agent-runner channel` (still with the runner's privileges).
    pub fn start(file: PathBuf, passwd: PathBuf) -> Self {
        let mut s = Self {
            file,
            passwd,
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot find the runner binary; no channel");
                return;
            }
        };
        let child = Command::new(exe)
            .arg("channel")
            .arg("--channel-file")
            .arg(&self.file)
            .arg("--passwd")
            .arg(&self.passwd)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match child {
            Ok(c) => self.child = Some(c),
            Err(e) => tracing::error!(error = %e, "cannot start the channel process"),
        }
    }

    /// After the job: when the sandbox has a channel, keeps its process running (restarting
    /// it if it dies) until `stop` fires; otherwise stops it at once.
    pub async fn finish(mut self, stop: &CancellationToken) {
        if !stop.is_cancelled() && self.file.exists() {
            tracing::info!("job runner done; keeping the sandbox channel until stopped");
            while let Some(child) = self.child.as_mut() {
                tokio::select! {
                    status = child.wait() => {
                        tracing::warn!(?status, "the channel process ended; restarting it");
                        self.child = None;
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => self.spawn(),
                            () = stop.cancelled() => break,
                        }
                    }
                    () = stop.cancelled() => break,
                }
            }
        }
        self.stop().await;
    }

    /// SIGTERM to the channel process, SIGKILL after 5 s.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let sent = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            if sent == Err(nix::errno::Errno::EPERM) {
                // The runner dropped its privileges: the (root) channel process gets its
                // parent-death signal when the runner exits.
                tracing::debug!("the channel process ends with the runner");
                return;
            }
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}
