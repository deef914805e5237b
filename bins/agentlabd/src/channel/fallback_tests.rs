//! The exec fallback through the backend's guest exec (fallback.rs), over the real control
//! socket with the fake backend's recording guest exec.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};

use agentlab_core::api::channel::{CopyInRequest, ExecUser, StreamRequest, TtySize};
use agentlab_core::api::frame::Frame;
use agentlab_core::hypervisor::{GuestExecError, GuestExecOutput};
use agentlab_core::{EventKind, EventQuery};

use super::tests::{agent, client, env, exec};
use agentlab_host::channel::fallback::{MAX_INPUT, MAX_OUTPUT};

/// A guest exec that answers stdout = the argv after `--`'s environment, joined, then the
/// stdin; stderr `warn`; exit code 3.
fn echo() -> agentlab_core::fake::hypervisor::GuestExecReply {
    Arc::new(|req| {
        let mut stdout = req.argv.last().cloned().unwrap_or_default().into_bytes();
        stdout.extend_from_slice(req.input.as_deref().unwrap_or_default());
        Ok(GuestExecOutput {
            exit_code: 3,
            signal: None,
            stdout,
            stderr: b"warn".to_vec(),
            truncated: false,
        })
    })
}

/// Frames until the stream ends.
async fn rest<S>(c: &mut S) -> Vec<Frame>
where
    S: futures::Stream<Item = Result<Frame, agentlab_core::api::frame::FrameError>> + Unpin,
{
    let mut out = Vec::new();
    while let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(10), c.next()).await {
        out.push(f);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_without_the_runner_goes_through_the_guest_agent_marked_and_recorded() {
    let env = env().await;
    env.hv.enable_guest_exec(echo());
    let (vmid, _key) = env.sandbox().await;
    let mut c = client(&env.sock, vmid)
        .await
        .expect("upgraded for the fallback");
    c.send(exec(&["printf", "s3cr3t-argument"]))
        .await
        .expect("send");
    assert_eq!(c.next().await.expect("frame").expect("ok"), Frame::Ready);
    match c.next().await.expect("frame").expect("ok") {
        Frame::Notice(m) => {
            assert!(m.contains("agent-runner is not connected"), "{m}");
            assert!(m.contains("no PTY"), "{m}");
            assert!(m.contains(&format!("{} KiB", MAX_OUTPUT / 1024)), "{m}");
        }
        other => panic!("expected the notice, got {other:?}"),
    }
    c.send(Frame::Stdin(Bytes::from_static(b"-in")))
        .await
        .expect("stdin");
    c.send(Frame::StdinEof).await.expect("eof");
    let frames = rest(&mut c).await;
    assert_eq!(
        frames,
        vec![
            Frame::Stdout(Bytes::from_static(b"s3cr3t-argument-in")),
            Frame::Stderr(Bytes::from_static(b"warn")),
            Frame::Exit(agentlab_core::api::channel::ExitInfo {
                code: 3,
                signal: None,
                timed_out: false
            }),
        ]
    );
    // What the guest agent was asked to run: the user, home and timeout applied.
    let calls = env.hv.guest_exec_calls();
    assert_eq!(calls.len(), 1);
    let (called, req) = &calls[0];
    assert_eq!(*called, vmid);
    assert_eq!(&req.argv[..4], ["timeout", "-k", "5s", "300s"]);
    assert!(
        req.argv
            .windows(4)
            .any(|w| w == ["runuser", "-u", "agent", "--"]),
        "{:?}",
        req.argv
    );
    assert_eq!(
        &req.argv[req.argv.len() - 2..],
        ["printf", "s3cr3t-argument"]
    );
    assert_eq!(req.input.as_deref(), Some(&b"-in"[..]));
    assert_eq!(req.max_output, MAX_OUTPUT);
    // The same events, marked.
    let closed = loop {
        let ev = env.events(vmid, EventKind::StreamClosed).await;
        if !ev.is_empty() {
            break ev;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(closed[0].payload["via"], "guest_agent");
    assert_eq!(closed[0].payload["exit_code"], 3);
    assert_eq!(closed[0].payload["bytes_in"], 3);
    assert_eq!(closed[0].payload["bytes_out"], 18 + 4);
    let opened = env.events(vmid, EventKind::StreamOpened).await;
    assert_eq!(opened[0].payload["via"], "guest_agent");
    assert_eq!(opened[0].payload["kind"], "exec");
    assert!(
        opened[0].message.contains("guest agent"),
        "{}",
        opened[0].message
    );
    let all = serde_json::to_string(
        &env.lab
            .events(&EventQuery {
                sandbox: Some(vmid),
                ..Default::default()
            })
            .await
            .expect("events"),
    )
    .expect("json");
    assert!(
        !all.contains("s3cr3t-argument"),
        "arguments reached the events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_copy_and_forward_still_need_the_runner() {
    let env = env().await;
    env.hv.enable_guest_exec(echo());
    let (vmid, _key) = env.sandbox().await;
    let shell = {
        let Frame::Request(StreamRequest::Exec(mut e)) = exec(&["bash"]) else {
            unreachable!()
        };
        e.tty = Some(TtySize { cols: 80, rows: 24 });
        Frame::Request(StreamRequest::Exec(e))
    };
    let copy = Frame::Request(StreamRequest::CopyIn(CopyInRequest {
        path: "/tmp".into(),
        user: ExecUser::Agent,
    }));
    let forward = Frame::Request(StreamRequest::Forward(
        agentlab_core::api::channel::ForwardRequest { port: 8080 },
    ));
    for req in [shell, copy, forward] {
        let mut c = client(&env.sock, vmid).await.expect("upgraded");
        c.send(req).await.expect("send");
        match c.next().await {
            Some(Ok(Frame::Error(m))) => assert!(m.starts_with("agent_not_connected"), "{m}"),
            other => panic!("expected agent_not_connected, got {other:?}"),
        }
    }
    assert!(env.hv.guest_exec_calls().is_empty());
    assert!(env.events(vmid, EventKind::StreamOpened).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_wins_when_the_runner_is_connected() {
    let env = env().await;
    env.hv.enable_guest_exec(echo());
    let (vmid, key) = env.sandbox().await;
    let _agent = agent(env.guest, vmid, &key).await.expect("accepted");
    env.connected(vmid).await;
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(exec(&["true"])).await.expect("send");
    c.send(Frame::StdinEof).await.expect("eof");
    let frames = rest(&mut c).await;
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Notice(_))),
        "{frames:?}"
    );
    assert!(matches!(frames.last(), Some(Frame::Exit(x)) if x.code == 1));
    assert!(env.hv.guest_exec_calls().is_empty());
    let opened = env.events(vmid, EventKind::StreamOpened).await;
    assert_eq!(opened[0].payload["via"], "channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_capped_and_over_limit_stdin_or_signals_end_it_with_a_reason() {
    let env = env().await;
    env.hv.enable_guest_exec(Arc::new(|req| {
        if req.argv.last().is_some_and(|a| a == "down") {
            return Err(GuestExecError::AgentUnavailable(
                "QEMU guest agent is not running".into(),
            ));
        }
        Ok(GuestExecOutput {
            stdout: vec![b'x'; 2 * MAX_OUTPUT],
            ..Default::default()
        })
    }));
    let (vmid, _key) = env.sandbox().await;
    // Output over the cap: cut, with a notice.
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(exec(&["yes"])).await.expect("send");
    c.send(Frame::StdinEof).await.expect("eof");
    let frames = rest(&mut c).await;
    let got: usize = frames
        .iter()
        .map(|f| match f {
            Frame::Stdout(b) => b.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(got, MAX_OUTPUT);
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Frame::Notice(m) if m.contains("cut"))),
        "{:?}",
        frames
            .iter()
            .filter(|f| !matches!(f, Frame::Stdout(_)))
            .collect::<Vec<_>>()
    );
    assert!(matches!(frames.last(), Some(Frame::Exit(x)) if x.code == 0));
    // Stdin over the cap: an error, nothing runs.
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(exec(&["cat"])).await.expect("send");
    c.send(Frame::Stdin(Bytes::from(vec![0u8; MAX_INPUT + 1])))
        .await
        .expect("stdin");
    let frames = rest(&mut c).await;
    assert!(
        matches!(frames.last(), Some(Frame::Error(m)) if m.contains("stdin is over")),
        "{:?}",
        frames.last()
    );
    // A signal cannot be delivered: said so, nothing runs.
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(exec(&["sleep", "9"])).await.expect("send");
    c.send(Frame::Signal(2)).await.expect("signal");
    let frames = rest(&mut c).await;
    assert!(
        matches!(frames.last(), Some(Frame::Error(m)) if m.contains("signal 2 not delivered")),
        "{:?}",
        frames.last()
    );
    assert_eq!(env.hv.guest_exec_calls().len(), 1);
    // The guest agent is down: a clear error, recorded.
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(exec(&["down"])).await.expect("send");
    c.send(Frame::StdinEof).await.expect("eof");
    let frames = rest(&mut c).await;
    assert!(
        matches!(frames.last(), Some(Frame::Error(m)) if m.contains("guest agent is not running")),
        "{:?}",
        frames.last()
    );
    let closed = loop {
        let ev = env.events(vmid, EventKind::StreamClosed).await;
        if ev.len() == 4 {
            break ev;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        closed[3].payload["error"]
            .as_str()
            .is_some_and(|e| e.contains("not running")),
        "{:?}",
        closed[3].payload
    );
}
