#![cfg(test)]
//! Engine: idle stop measures activity — open streams, job log output and guest CPU — not the
//! time since the last state change.

#[path = "engine/common.rs"]
mod common;

use std::time::Duration;

use agentlab_core::engine::{SandboxRequest, StreamRecord, StreamVia};
use agentlab_core::{EventKind, SandboxState, Vmid};
use common::{Rig, rig};

/// A READY `interactive-dev` sandbox (idle stop after 60 minutes) and its idle minutes.
async fn ready(r: &Rig) -> (Vmid, u64) {
    let sb = r
        .lab
        .create_sandbox(SandboxRequest {
            profile: "interactive-dev".into(),
            ..SandboxRequest::default()
        })
        .await
        .unwrap();
    r.lab.wait_idle().await;
    assert_eq!(r.state(sb.vmid).await, SandboxState::Ready);
    let idle = r
        .lab
        .profiles()
        .get("interactive-dev")
        .unwrap()
        .behavior
        .idle_stop_minutes
        .unwrap();
    (sb.vmid, u64::from(idle))
}

fn closed(id: u64) -> StreamRecord {
    StreamRecord {
        id,
        via: StreamVia::Channel,
        kind: "shell",
        exit_code: Some(0),
        error: None,
        duration: Duration::from_secs(1),
        bytes_in: 1,
        bytes_out: 1,
    }
}

#[tokio::test]
async fn an_open_shell_keeps_a_sandbox_running_past_its_idle_time() {
    let r = rig().await;
    let (vmid, idle) = ready(&r).await;
    r.advance_min(5);
    r.lab
        .record_stream_opened(vmid, 1, "shell", "agent", "/bin/bash", "uid 0")
        .await;
    // Hours with the shell open and quiet: not idle.
    for _ in 0..3 {
        r.advance_min(idle);
        r.lab.tick().await.unwrap();
        assert_eq!(r.state(vmid).await, SandboxState::Ready);
    }
    r.lab.record_stream_closed(vmid, &closed(1)).await;
    let closed_at = r.clock_now();
    assert_eq!(r.lab.last_activity(vmid), Some(closed_at));
    // The idle time counts from the close.
    r.advance_min(idle - 1);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Ready);
    r.advance_min(1);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Stopped);
    let why = r.messages(vmid, EventKind::SandboxAction).await;
    assert!(
        why.iter()
            .any(|m| m.starts_with(&format!("idle for {idle} min"))),
        "{why:?}"
    );
}

#[tokio::test]
async fn guest_cpu_above_the_threshold_is_activity_and_below_it_is_not() {
    let r = rig().await;
    let (vmid, idle) = ready(&r).await;
    // The guest works: 30 s of CPU every 10 minutes (5 % of a CPU is 30 s per 10 min).
    let mut cpu = 0.0;
    r.hv.set_cpu_seconds(vmid, cpu).unwrap();
    for _ in 0..(idle / 10 + 3) {
        r.advance_min(10);
        cpu += 40.0;
        r.hv.set_cpu_seconds(vmid, cpu).unwrap();
        r.lab.tick().await.unwrap();
        assert_eq!(r.state(vmid).await, SandboxState::Ready);
    }
    // Then it only ticks over (1 s per 10 min): idle from the last busy sample.
    let busy_until = r.clock_now();
    for _ in 0..(idle / 10 - 1) {
        r.advance_min(10);
        cpu += 1.0;
        r.hv.set_cpu_seconds(vmid, cpu).unwrap();
        r.lab.tick().await.unwrap();
        assert_eq!(r.state(vmid).await, SandboxState::Ready);
    }
    assert_eq!(r.lab.last_activity(vmid), Some(busy_until));
    r.advance_min(10);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Stopped);
}

#[tokio::test]
async fn a_stream_that_opened_and_closed_restarts_the_idle_time() {
    let r = rig().await;
    let (vmid, idle) = ready(&r).await;
    r.advance_min(idle - 2);
    r.lab
        .record_stream_opened(vmid, 7, "exec", "agent", "make test", "uid 0")
        .await;
    r.lab.record_stream_closed(vmid, &closed(7)).await;
    r.advance_min(3);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Ready);
    r.advance_min(idle);
    r.lab.tick().await.unwrap();
    assert_eq!(r.state(vmid).await, SandboxState::Stopped);
}
