//! [`GuestExec`] through the QEMU guest agent: `guest-exec` (argv, stdin as `input-data`,
//! `capture-output: true`), then `guest-exec-status` polled (20 ms, growing by half up to
//! 1 s) until `exited`. Each call is its own short agent session (the agent socket takes one
//! client at a time, so a long command does not lock out the address polls); a busy socket is
//! retried until the deadline. QGA keeps at most 16 MiB of each output stream and says when
//! it cut (`out-truncated`/`err-truncated`).

use std::path::Path;
use std::time::{Duration, Instant};

use agentlab_core::Vmid;
use agentlab_core::hypervisor::{GuestExec, GuestExecError, GuestExecOutput, GuestExecRequest};
use async_trait::async_trait;
use qapi::qga;

use crate::error::QemuError;
use crate::hypervisor::QemuHypervisor;
use crate::qga::Qga;

/// First `guest-exec-status` poll interval.
const FIRST_POLL: Duration = Duration::from_millis(20);
/// Largest poll interval.
const MAX_POLL: Duration = Duration::from_secs(1);
/// How long one agent session may take to connect and sync.
const CONNECT: Duration = Duration::from_secs(3);

/// A session on `sock`, retried while the socket is busy or the agent silent, until
/// `deadline`.
async fn session(sock: &Path, vmid: u32, deadline: Instant) -> Result<Qga, GuestExecError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match Qga::connect(
            sock,
            vmid,
            CONNECT.min(left.max(Duration::from_millis(100))),
        )
        .await
        {
            Ok(q) => return Ok(q),
            Err(e) if Instant::now() >= deadline => {
                return Err(GuestExecError::AgentUnavailable(e.to_string()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The output of an exited status, capped at `max`.
fn output(st: qga::GuestExecStatus, max: usize) -> GuestExecOutput {
    let signal = st.signal.and_then(|s| i32::try_from(s).ok());
    let exit_code = st
        .exitcode
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or_else(|| signal.map_or(-1, |s| 128 + s));
    let mut out = GuestExecOutput {
        exit_code,
        signal,
        stdout: st.out_data.unwrap_or_default(),
        stderr: st.err_data.unwrap_or_default(),
        truncated: st.out_truncated.unwrap_or(false) || st.err_truncated.unwrap_or(false),
    };
    out.cap(max);
    out
}

/// Runs `req` through the guest agent listening on `sock`.
pub(crate) async fn run(
    sock: &Path,
    vmid: u32,
    req: &GuestExecRequest,
) -> Result<GuestExecOutput, GuestExecError> {
    let deadline = Instant::now() + req.timeout;
    // The first session must come up quickly: an agent that is not there is reported as such
    // rather than waited for.
    let first = Instant::now() + CONNECT.min(req.timeout);
    let pid = {
        let q = session(sock, vmid, first).await?;
        q.exec(&req.argv, req.input.as_deref())
            .await
            .map_err(|e| match e {
                QemuError::Protocol { message, .. } if message != "no answer" => {
                    GuestExecError::Failed(message)
                }
                other => GuestExecError::AgentUnavailable(other.to_string()),
            })?
    };
    tracing::debug!(sandbox = vmid, pid, "guest-agent exec started");
    let mut interval = FIRST_POLL;
    loop {
        tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
        if Instant::now() >= deadline {
            return Err(GuestExecError::TimedOut(req.timeout));
        }
        let q = session(sock, vmid, deadline).await?;
        let st = q
            .exec_status(pid)
            .await
            .map_err(|e| GuestExecError::Failed(e.to_string()))?;
        if st.exited {
            return Ok(output(st, req.max_output));
        }
        interval = (interval * 3 / 2).min(MAX_POLL);
    }
}

#[async_trait]
impl GuestExec for QemuHypervisor {
    async fn exec(
        &self,
        vmid: Vmid,
        req: &GuestExecRequest,
    ) -> Result<GuestExecOutput, GuestExecError> {
        let (dir, running) = self.vm_dir_and_running(vmid).await?;
        if !running {
            return Err(GuestExecError::AgentUnavailable(format!(
                "VM {vmid} is not running"
            )));
        }
        run(&dir.join("qga.sock"), vmid.get(), req).await
    }
}

#[cfg(test)]
mod tests {
    //! Against a stand-in guest agent on a real Unix socket, speaking QGA's JSON lines.
    use super::*;
    use base64::Engine as _;
    use serde_json::{Value, json};
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    /// Serves one session per connection: `guest-sync`, `guest-exec` (pid 42; an unknown
    /// program is an error), `guest-exec-status` (running for the first `busy` polls, then
    /// exited with the argv joined on stdout and the stdin on stderr).
    fn fake_agent(sock: &Path, busy: usize) -> tokio::task::JoinHandle<Vec<Value>> {
        let listener = tokio::net::UnixListener::bind(sock).expect("bind");
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut polls = 0;
            let mut last: Option<Value> = None;
            while let Ok(Ok((conn, _))) =
                tokio::time::timeout(Duration::from_secs(2), listener.accept()).await
            {
                let (r, mut w) = conn.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let cmd: Value = serde_json::from_str(&line).expect("json");
                    let args = cmd["arguments"].clone();
                    let answer = match cmd["execute"].as_str().unwrap_or_default() {
                        "guest-sync" => json!({"return": args["id"]}),
                        "guest-exec" if args["path"] == "nope" => json!({"error": {
                            "class": "GenericError",
                            "desc": "Failed to execute child process “nope” (No such file or directory)"}}),
                        "guest-exec" => {
                            last = Some(args.clone());
                            json!({"return": {"pid": 42}})
                        }
                        "guest-exec-status" if args["pid"] != 42 => json!({"error": {
                            "class": "GenericError", "desc": "Invalid parameter 'pid'"}}),
                        "guest-exec-status" if polls < busy => {
                            polls += 1;
                            json!({"return": {"exited": false}})
                        }
                        "guest-exec-status" => {
                            let a = last.clone().unwrap_or_default();
                            let mut out = a["path"].as_str().unwrap_or_default().to_owned();
                            for x in a["arg"].as_array().into_iter().flatten() {
                                out.push(' ');
                                out.push_str(x.as_str().unwrap_or_default());
                            }
                            let b64 = base64::engine::general_purpose::STANDARD;
                            json!({"return": {"exited": true, "exitcode": 7,
                                "out-data": b64.encode(out),
                                "err-data": a["input-data"].clone(),
                                "out-truncated": false}})
                        }
                        other => panic!("unexpected {other}"),
                    };
                    seen.push(cmd);
                    let mut bytes = serde_json::to_vec(&answer).expect("json");
                    bytes.push(b'\n');
                    if w.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            }
            seen
        })
    }

    fn req(argv: &[&str], input: Option<&[u8]>) -> GuestExecRequest {
        GuestExecRequest {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            input: input.map(<[u8]>::to_vec),
            timeout: Duration::from_secs(10),
            max_output: 1 << 20,
        }
    }

    #[tokio::test]
    async fn exec_polls_the_agent_until_the_command_exits() {
        let dir = tempfile::tempdir().expect("dir");
        let sock = dir.path().join("qga.sock");
        let agent = fake_agent(&sock, 2);
        let out = run(&sock, 9101, &req(&["ls", "-l", "/"], Some(b"\x00\xffin")))
            .await
            .expect("exec");
        assert_eq!(out.exit_code, 7);
        assert_eq!(out.stdout, b"ls -l /");
        assert_eq!(
            out.stderr, b"\x00\xffin",
            "the stdin reached the agent as sent"
        );
        assert!(!out.truncated);
        // An unknown program: the agent's own message.
        let err = run(&sock, 9101, &req(&["nope"], None)).await.unwrap_err();
        assert!(
            matches!(&err, GuestExecError::Failed(m) if m.contains("No such file")),
            "{err:?}"
        );
        let seen = agent.await.expect("agent");
        let exec = seen
            .iter()
            .find(|c| c["execute"] == "guest-exec")
            .expect("guest-exec sent");
        assert_eq!(exec["arguments"]["capture-output"], json!(true));
        assert_eq!(exec["arguments"]["arg"], json!(["-l", "/"]));
        let polls = seen
            .iter()
            .filter(|c| c["execute"] == "guest-exec-status")
            .count();
        assert_eq!(polls, 3, "two running answers, then the exit");
        assert!(
            seen.iter().filter(|c| c["execute"] == "guest-sync").count() >= 4,
            "every call is its own synced session"
        );
    }

    #[tokio::test]
    async fn a_missing_agent_or_a_command_past_its_timeout_is_typed() {
        let dir = tempfile::tempdir().expect("dir");
        let sock = dir.path().join("qga.sock");
        let err = run(&sock, 9101, &req(&["true"], None)).await.unwrap_err();
        assert!(
            matches!(err, GuestExecError::AgentUnavailable(_)),
            "{err:?}"
        );
        let _agent = fake_agent(&sock, usize::MAX);
        let mut r = req(&["sleep", "60"], None);
        r.timeout = Duration::from_millis(400);
        let err = run(&sock, 9101, &r).await.unwrap_err();
        assert!(matches!(err, GuestExecError::TimedOut(_)), "{err:?}");
    }

    #[test]
    fn output_of_a_killed_command_and_caps() {
        let st = qga::GuestExecStatus {
            exited: true,
            exitcode: None,
            signal: Some(15),
            out_data: Some(vec![1; 10]),
            err_data: None,
            out_truncated: None,
            err_truncated: Some(true),
        };
        let out = output(st, 4);
        assert_eq!((out.exit_code, out.signal), (143, Some(15)));
        assert_eq!(out.stdout, vec![1; 4]);
        assert!(out.truncated);
    }
}
