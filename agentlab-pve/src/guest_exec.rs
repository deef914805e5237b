//! [`GuestExec`] over PVE's guest-agent passthrough: `POST …/agent/exec` (`command` as an
//! array, the stdin as `input-data`) returns the guest pid, then `GET …/agent/exec-status
//! ?pid=N` is polled (100 ms, growing by half up to 2 s; each poll goes through the node's
//! request budget like every call) until it says `exited`.
//!
//! PVE hands `input-data` to QGA base64-encoded and decodes `out-data`/`err-data` before
//! answering, so both travel as JSON text: the stdin must be UTF-8 (at most 65 536
//! characters, PVE's limit), and the output bytes arrive one character per byte (Perl's JSON
//! encoder widens each byte to a code point), which [`output_bytes`] turns back into bytes.
//! Privilege: `VM.GuestAgent.Unrestricted` on the VM (PVE 9), `VM.Monitor` (PVE 8).

use std::time::{Duration, Instant};

use agentlab_core::hypervisor::{GuestExec, GuestExecError, GuestExecOutput, GuestExecRequest};
use agentlab_core::ids::Vmid;
use async_trait::async_trait;
use serde_json::Value;

use crate::client::{Params, lenient_u64};
use crate::error::PveError;
use crate::pve::ProxmoxHypervisor;

/// First `exec-status` poll interval.
const FIRST_POLL: Duration = Duration::from_millis(100);
/// Largest `exec-status` poll interval.
const MAX_POLL: Duration = Duration::from_secs(2);
/// PVE's `input-data` limit (characters).
pub const MAX_INPUT_CHARS: usize = 65_536;

/// The bytes of an `out-data`/`err-data` string: one byte per character when every character
/// is below U+0100 (how PVE's JSON encoder widens raw bytes), else the text's UTF-8.
pub fn output_bytes(s: &str) -> Vec<u8> {
    if s.chars().all(|c| u32::from(c) < 0x100) {
        s.chars().map(|c| u32::from(c) as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

/// Maps a failed agent call: the agent not being there is [`GuestExecError::AgentUnavailable`],
/// an error from inside the agent (`Agent error: …`) is [`GuestExecError::Failed`].
fn agent_error(e: PveError) -> GuestExecError {
    let m = e.message().trim_end().to_owned();
    match &e {
        PveError::Api { status: 500, .. }
            if m.contains("guest agent is not running")
                || m.contains("No QEMU guest agent configured")
                || m.ends_with("is not running") =>
        {
            GuestExecError::AgentUnavailable(m)
        }
        PveError::Api { status: 500, .. } if m.contains("Agent error") => GuestExecError::Failed(m),
        _ => GuestExecError::Hypervisor(e.into()),
    }
}

/// A JSON 0/1/true/false as a bool.
fn flag(v: Option<&Value>) -> bool {
    v.and_then(|v| v.as_bool().or_else(|| lenient_u64(v).map(|n| n != 0)))
        .unwrap_or(false)
}

/// The output of an `exec-status` answer that says `exited`.
pub fn exited_output(status: &Value, max_output: usize) -> GuestExecOutput {
    let text = |k: &str| status.get(k).and_then(Value::as_str).map(output_bytes);
    let signal = status
        .get("signal")
        .and_then(lenient_u64)
        .and_then(|s| i32::try_from(s).ok());
    let exit_code = status
        .get("exitcode")
        .and_then(|v| v.as_i64().or_else(|| lenient_u64(v).map(|n| n as i64)))
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or_else(|| signal.map_or(-1, |s| 128 + s));
    let mut out = GuestExecOutput {
        exit_code,
        signal,
        stdout: text("out-data").unwrap_or_default(),
        stderr: text("err-data").unwrap_or_default(),
        truncated: flag(status.get("out-truncated")) || flag(status.get("err-truncated")),
    };
    out.cap(max_output);
    out
}

#[async_trait]
impl GuestExec for ProxmoxHypervisor {
    async fn exec(
        &self,
        vmid: Vmid,
        req: &GuestExecRequest,
    ) -> Result<GuestExecOutput, GuestExecError> {
        let node = self.vm_node(vmid.get()).await?;
        let base = format!("/nodes/{node}/qemu/{vmid}/agent");
        let mut params: Params = req.argv.iter().map(|a| ("command", a.clone())).collect();
        if let Some(input) = &req.input {
            let text = String::from_utf8(input.clone()).map_err(|_| {
                GuestExecError::Failed(
                    "stdin through the Proxmox VE guest agent must be UTF-8 text".into(),
                )
            })?;
            if text.chars().count() > MAX_INPUT_CHARS {
                return Err(GuestExecError::Failed(format!(
                    "stdin through the Proxmox VE guest agent is limited to {MAX_INPUT_CHARS} characters"
                )));
            }
            params.push(("input-data", text));
        }
        let started = self
            .api
            .post(&format!("{base}/exec"), &params)
            .await
            .map_err(agent_error)?;
        let pid = started.get("pid").and_then(lenient_u64).ok_or_else(|| {
            GuestExecError::Hypervisor(
                PveError::Decode {
                    call: format!("POST {base}/exec"),
                    detail: format!("no pid in {started}"),
                }
                .into(),
            )
        })?;
        tracing::debug!(sandbox = %vmid, pid, "guest-agent exec started");
        let deadline = Instant::now() + req.timeout;
        let mut interval = FIRST_POLL;
        let query: Params = vec![("pid", pid.to_string())];
        loop {
            let status = self
                .api
                .get(&format!("{base}/exec-status"), &query)
                .await
                .map_err(agent_error)?;
            if flag(status.get("exited")) {
                return Ok(exited_output(&status, req.max_output));
            }
            if Instant::now() >= deadline {
                return Err(GuestExecError::TimedOut(req.timeout));
            }
            tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now())))
                .await;
            interval = (interval * 3 / 2).min(MAX_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_comes_back_as_the_original_bytes() {
        // Bytes 0xc3 0xa9 ("é" in UTF-8) widened to two code points by PVE's encoder.
        assert_eq!(output_bytes("caf\u{c3}\u{a9}"), "café".as_bytes());
        assert_eq!(output_bytes("\u{ff}\u{0}"), vec![0xff, 0]);
        // Real wide text stays UTF-8.
        assert_eq!(output_bytes("€"), "€".as_bytes());
    }

    #[test]
    fn exec_status_is_read_leniently() {
        let out = exited_output(
            &json!({"exited": 1, "exitcode": 2, "out-data": "hello", "err-data": "oops",
                    "out-truncated": 0}),
            3,
        );
        assert_eq!(out.exit_code, 2);
        assert_eq!(out.stdout, b"hel");
        assert_eq!(out.stderr, b"oop");
        assert!(out.truncated);
        let killed = exited_output(&json!({"exited": true, "signal": 9}), 10);
        assert_eq!((killed.exit_code, killed.signal), (137, Some(9)));
        assert!(!killed.truncated);
        let cut = exited_output(&json!({"exited": 1, "exitcode": 0, "err-truncated": 1}), 10);
        assert!(cut.truncated);
    }

    #[test]
    fn missing_agents_are_typed() {
        let api = |m: &str| PveError::Api {
            call: "POST /nodes/pve1/qemu/100/agent/exec".into(),
            status: 500,
            message: m.into(),
        };
        assert!(matches!(
            agent_error(api("QEMU guest agent is not running\n")),
            GuestExecError::AgentUnavailable(_)
        ));
        assert!(matches!(
            agent_error(api("No QEMU guest agent configured")),
            GuestExecError::AgentUnavailable(_)
        ));
        assert!(matches!(
            agent_error(api("VM 100 is not running")),
            GuestExecError::AgentUnavailable(_)
        ));
        assert!(matches!(
            agent_error(api("Agent error: Failed to execute child process “nope”")),
            GuestExecError::Failed(_)
        ));
        assert!(matches!(
            agent_error(PveError::Api {
                call: "x".into(),
                status: 403,
                message: "Permission check failed".into()
            }),
            GuestExecError::Hypervisor(_)
        ));
    }
}
