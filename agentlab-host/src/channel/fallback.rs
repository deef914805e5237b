//! The exec fallback: when a sandbox's guest agent (`agent-runner`) is not connected and the
//! backend can run commands through the hypervisor's own guest agent
//! ([`agentlab_core::hypervisor::GuestExec`]: Proxmox VE, QEMU), an exec without a PTY still
//! runs — through that agent, with the same frames for the client:
//!
//! `Ready`, a `Notice` saying how it runs, then the client's stdin is read to its `StdinEof`
//! (at most [`MAX_INPUT`] bytes), the command runs, and its stdout and stderr (each cut at
//! [`MAX_OUTPUT`] bytes, with a second `Notice` when cut) and `Exit` come back once it ended.
//! No PTY, no signals (a `Signal` frame ends the wait with an error; the command may go on),
//! no streaming. The guest agent runs as root, so the command is wrapped: `timeout -k 5 N`
//! (N: the request's `timeout_secs`, else [`DEFAULT_TIMEOUT`]), `runuser -u agent --` for the
//! `agent` user, and `env -C <cwd> -- HOME=… K=V …` for the directory and environment; the
//! guest needs coreutils ≥ 8.28 and util-linux (as the AgentLab images have).

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};

use agentlab_core::Vmid;
use agentlab_core::api::channel::{ExecRequest, ExecUser, ExitInfo, StreamRequest};
use agentlab_core::api::frame::{CHUNK, Frame, FrameError};
use agentlab_core::engine::{Lab, StreamRecord};
use agentlab_core::hypervisor::{GuestExecError, GuestExecRequest};

/// Most stdin bytes a fallback exec takes (Proxmox VE's `input-data` limit).
pub const MAX_INPUT: usize = 64 * 1024;
/// Most bytes of stdout and of stderr each a fallback exec returns.
pub const MAX_OUTPUT: usize = 1024 * 1024;
/// Timeout of a fallback exec whose request has none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Seconds between `timeout`'s SIGTERM and its SIGKILL (as the runner does).
const KILL_AFTER_SECS: u64 = 5;
/// Extra time the daemon waits for the guest agent beyond the command's own timeout.
const WAIT_MARGIN: Duration = Duration::from_secs(15);
/// Exit code of `timeout` when it stopped the command.
const TIMEOUT_EXIT: i32 = 124;

/// Whether `request` may take the fallback: an exec without a PTY.
pub fn applies(request: &StreamRequest) -> bool {
    matches!(request, StreamRequest::Exec(e) if e.tty.is_none())
}

/// The first note for the person at the client.
pub fn notice() -> String {
    format!(
        "the guest agent-runner is not connected; ran through the hypervisor's guest agent: \
         no PTY, no signals, stdin read to its end first (at most {} KiB), output returned \
         when the command ends, capped at {} KiB per stream",
        MAX_INPUT / 1024,
        MAX_OUTPUT / 1024
    )
}

/// The argv the guest agent runs for `e`: the user, directory, environment and timeout
/// applied by `timeout`, `runuser` and `env`.
pub fn guest_argv(e: &ExecRequest) -> Result<Vec<String>, String> {
    if e.argv.first().is_some_and(|p| p.contains('=')) {
        return Err("a program name containing '=' cannot run through the guest agent".into());
    }
    let secs = e.timeout_secs.unwrap_or(DEFAULT_TIMEOUT.as_secs());
    let mut out: Vec<String> = vec![
        "timeout".into(),
        "-k".into(),
        format!("{KILL_AFTER_SECS}s"),
        format!("{secs}s"),
    ];
    let (home, name) = match e.user {
        ExecUser::Agent => ("/home/agent", "agent"),
        ExecUser::Root => ("/root", "root"),
    };
    if e.user == ExecUser::Agent {
        out.extend(["runuser", "-u", "agent", "--"].map(String::from));
    }
    out.extend([
        "env".to_owned(),
        "-C".to_owned(),
        e.cwd.clone().unwrap_or_else(|| home.to_owned()),
        "--".to_owned(),
        format!("HOME={home}"),
        format!("USER={name}"),
        format!("LOGNAME={name}"),
    ]);
    out.extend(e.env.iter().map(|(k, v)| format!("{k}={v}")));
    out.extend(e.argv.iter().cloned());
    Ok(out)
}

/// How long the daemon waits for the guest agent to report the end of `e`.
fn wait_for(e: &ExecRequest) -> Duration {
    let secs = e.timeout_secs.unwrap_or(DEFAULT_TIMEOUT.as_secs());
    Duration::from_secs(secs.saturating_add(KILL_AFTER_SECS)) + WAIT_MARGIN
}

/// Runs `e` in `vmid` through the backend's guest exec and answers `client` with frames;
/// fills `record` (exit code, error, bytes).
pub async fn run<C>(
    lab: &Lab,
    vmid: Vmid,
    e: &ExecRequest,
    client: &mut C,
    record: &mut StreamRecord,
) where
    C: futures::Stream<Item = Result<Frame, FrameError>>
        + futures::Sink<Frame, Error = FrameError>
        + Unpin,
{
    let fail = |record: &mut StreamRecord, m: String| {
        record.error = Some(m.clone());
        Frame::Error(m)
    };
    let hv = std::sync::Arc::clone(&lab.deps().hypervisor);
    let Some(exec) = hv.guest_exec() else {
        let _ = client
            .send(fail(record, "the backend has no guest exec".into()))
            .await;
        return;
    };
    let argv = match guest_argv(e) {
        Ok(a) => a,
        Err(m) => {
            let _ = client.send(fail(record, m)).await;
            return;
        }
    };
    if client.send(Frame::Ready).await.is_err()
        || client.send(Frame::Notice(notice())).await.is_err()
    {
        record.error = Some("the client went away".into());
        return;
    }
    let stopped = |sig: i32| {
        format!(
            "signal {sig} not delivered: a command run through the hypervisor's guest agent \
             cannot be signalled; stopped waiting (it may still run in the sandbox)"
        )
    };
    // The whole stdin first.
    let mut input = Vec::new();
    loop {
        match client.next().await {
            Some(Ok(Frame::Stdin(b))) => {
                input.extend_from_slice(&b);
                record.bytes_in = input.len() as u64;
                if input.len() > MAX_INPUT {
                    let m = format!(
                        "stdin is over the {} KiB a command run through the guest agent can take",
                        MAX_INPUT / 1024
                    );
                    let _ = client.send(fail(record, m)).await;
                    return;
                }
            }
            Some(Ok(Frame::StdinEof)) => break,
            Some(Ok(Frame::Signal(s))) => {
                let _ = client.send(fail(record, stopped(s))).await;
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                record.error = Some("the client went away before the end of stdin".into());
                return;
            }
        }
    }
    let req = GuestExecRequest {
        argv,
        input: (!input.is_empty()).then_some(input),
        timeout: wait_for(e),
        max_output: MAX_OUTPUT,
    };
    let running = exec.exec(vmid, &req);
    tokio::pin!(running);
    let result = loop {
        tokio::select! {
            r = &mut running => break r,
            f = client.next() => match f {
                Some(Ok(Frame::Signal(s))) => {
                    let _ = client.send(fail(record, stopped(s))).await;
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    record.error = Some("the client went away; the command may still run in the sandbox".into());
                    return;
                }
            },
        }
    };
    let out = match result {
        Ok(out) => out,
        Err(err) => {
            tracing::warn!(sandbox = %vmid, error = %err, "guest-agent exec failed");
            let m = match err {
                GuestExecError::Hypervisor(h) => format!("the guest agent exec failed: {h}"),
                other => other.to_string(),
            };
            let _ = client.send(fail(record, m)).await;
            return;
        }
    };
    record.bytes_out = (out.stdout.len() + out.stderr.len()) as u64;
    let chunks = out
        .stdout
        .chunks(CHUNK)
        .map(|c| Frame::Stdout(Bytes::copy_from_slice(c)))
        .chain(
            out.stderr
                .chunks(CHUNK)
                .map(|c| Frame::Stderr(Bytes::copy_from_slice(c))),
        );
    for f in chunks {
        if client.send(f).await.is_err() {
            record.error = Some("the client went away".into());
            return;
        }
    }
    if out.truncated {
        let _ = client
            .send(Frame::Notice(format!(
                "the output was cut (at most {} KiB per stream through the guest agent)",
                MAX_OUTPUT / 1024
            )))
            .await;
    }
    let exit = ExitInfo {
        code: out.exit_code,
        signal: out.signal,
        timed_out: out.exit_code == TIMEOUT_EXIT && out.signal.is_none(),
    };
    record.exit_code = Some(exit.code);
    let _ = client.send(Frame::Exit(exit)).await;
    let _ = client.close().await;
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn the_guest_argv_applies_user_directory_environment_and_timeout() {
        let mut e = ExecRequest {
            argv: vec!["ls".into(), "-l".into()],
            user: ExecUser::Agent,
            cwd: None,
            env: [("A".to_owned(), "1 2".to_owned())].into(),
            timeout_secs: Some(7),
            tty: None,
        };
        assert_eq!(
            guest_argv(&e).expect("argv").join(" "),
            "timeout -k 5s 7s runuser -u agent -- env -C /home/agent -- HOME=/home/agent \
             USER=agent LOGNAME=agent A=1 2 ls -l"
        );
        e.user = ExecUser::Root;
        e.cwd = Some("/srv".into());
        e.timeout_secs = None;
        e.env.clear();
        assert_eq!(
            guest_argv(&e).expect("argv").join(" "),
            "timeout -k 5s 300s env -C /srv -- HOME=/root USER=root LOGNAME=root ls -l"
        );
        e.argv[0] = "X=1".into();
        assert!(guest_argv(&e).is_err());
        assert_eq!(wait_for(&e), Duration::from_secs(320));
    }
}
