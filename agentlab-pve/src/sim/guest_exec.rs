//! The simulated guest agent's `agent/exec` and `agent/exec-status`. Nothing runs anywhere:
//! a [`GuestExecHandler`] (set with [`super::Simulator::set_guest_exec`]) decides how each
//! command ends; by default [`echo_handler`] answers. The answer is held back for the
//! handler's [`SimExecResult::runs_for`] (`exited: 0` until then), and like QGA the status of
//! an exited command is handed out once, then its pid is unknown. Output is encoded as PVE
//! sends it: one JSON character per byte.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::power::agent_ready;
use super::qemu::HResult;
use super::server::{ApiErr, Ctx, SimInner, lock};

/// A command the simulated guest agent was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimExecCall {
    /// VM id.
    pub vmid: u32,
    /// `command`: program and arguments.
    pub command: Vec<String>,
    /// `input-data`, if given.
    pub input: Option<String>,
}

/// How a simulated command ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimExecResult {
    /// Exit code (`None` with a signal).
    pub exitcode: Option<i64>,
    /// The signal that ended it.
    pub signal: Option<i64>,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
    /// How long it "runs" (`exec-status` says `exited: 0` until then).
    pub runs_for: Duration,
}

/// Decides how a simulated command ends.
pub type GuestExecHandler = Arc<dyn Fn(&SimExecCall) -> SimExecResult + Send + Sync>;

/// The default handler: exit code 0, stdout = the command joined by spaces and a newline,
/// then the input.
pub fn echo_handler() -> GuestExecHandler {
    Arc::new(|call: &SimExecCall| {
        let mut stdout = format!("{}\n", call.command.join(" ")).into_bytes();
        stdout.extend_from_slice(call.input.as_deref().unwrap_or_default().as_bytes());
        SimExecResult {
            exitcode: Some(0),
            stdout,
            ..SimExecResult::default()
        }
    })
}

/// The simulator's guest-exec state.
#[derive(Default)]
pub struct GuestExecs {
    pub(crate) handler: Option<GuestExecHandler>,
    next_pid: i64,
    running: BTreeMap<(u32, i64), (Instant, SimExecResult)>,
}

/// PVE's rendering of raw output bytes: each byte a character.
fn widen(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// `POST …/agent/exec`.
pub fn exec(inner: &SimInner, ctx: &Ctx) -> HResult {
    agent_ready(inner, ctx)?;
    let command: Vec<String> = ctx.all("command").into_iter().map(str::to_owned).collect();
    if command.is_empty() {
        return Err(ApiErr::internal("command or input-data (or both) required"));
    }
    let call = SimExecCall {
        vmid: ctx.req("vmid").parse().unwrap_or_default(),
        command,
        input: ctx.get("input-data").map(str::to_owned),
    };
    let handler = lock(&inner.execs)
        .handler
        .clone()
        .unwrap_or_else(echo_handler);
    // The handler runs without simulator locks held.
    let result = handler(&call);
    let mut execs = lock(&inner.execs);
    execs.next_pid += 1;
    let pid = 1000 + execs.next_pid;
    let done_at = Instant::now() + result.runs_for;
    execs.running.insert((call.vmid, pid), (done_at, result));
    Ok((json!({ "pid": pid }), None))
}

/// `GET …/agent/exec-status`.
pub fn exec_status(inner: &SimInner, ctx: &Ctx) -> HResult {
    agent_ready(inner, ctx)?;
    let vmid: u32 = ctx.req("vmid").parse().unwrap_or_default();
    let pid: i64 = ctx.req("pid").parse().unwrap_or_default();
    let mut execs = lock(&inner.execs);
    let Some((done_at, _)) = execs.running.get(&(vmid, pid)) else {
        return Err(ApiErr::internal(format!(
            "Agent error: Invalid parameter 'pid'\ncan't get exec status for '{pid}'"
        )));
    };
    if Instant::now() < *done_at {
        return Ok((json!({ "exited": 0 }), None));
    }
    let Some((_, r)) = execs.running.remove(&(vmid, pid)) else {
        return Err(ApiErr::internal("Agent error: Invalid parameter 'pid'"));
    };
    let mut v = json!({ "exited": 1 });
    if let Some(code) = r.exitcode {
        v["exitcode"] = json!(code);
    }
    if let Some(sig) = r.signal {
        v["signal"] = json!(sig);
    }
    if !r.stdout.is_empty() {
        v["out-data"] = json!(widen(&r.stdout));
    }
    if !r.stderr.is_empty() {
        v["err-data"] = json!(widen(&r.stderr));
    }
    Ok((v, None))
}
