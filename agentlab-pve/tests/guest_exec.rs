//! The exec fallback's Proxmox side: `agent/exec` + `agent/exec-status` against the simulator
//! (every request checked against the PVE 9.1 and 8.4 schemas).
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentlab_core::hypervisor::{GuestExecError, GuestExecRequest, Hypervisor, HypervisorError};
use agentlab_pve::ProxmoxHypervisor;
use agentlab_pve::sim::{SimExecCall, SimExecResult, Simulator};
use common::{assert_schema_clean, setup, spec};

fn req(argv: &[&str], input: Option<&[u8]>) -> GuestExecRequest {
    GuestExecRequest {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        input: input.map(<[u8]>::to_vec),
        timeout: Duration::from_secs(10),
        max_output: 1 << 20,
    }
}

/// A backend whose token may use the guest agent without restriction, and VM 9001 made.
async fn running_vm(unrestricted: bool) -> Option<(Simulator, ProxmoxHypervisor)> {
    let (sim, hv) = setup(|c| {
        if unrestricted && let Some(vms) = c.permissions.get_mut("/vms") {
            vms.insert("VM.GuestAgent.Unrestricted".into(), 1);
        }
    })
    .await?;
    let s = spec(9001);
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    Some((sim, hv))
}

async fn wait_for_agent(hv: &ProxmoxHypervisor) {
    for _ in 0..200 {
        match hv
            .guest_exec()
            .unwrap()
            .exec(spec(9001).vmid, &req(&["true"], None))
            .await
        {
            Err(GuestExecError::AgentUnavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return,
        }
    }
    panic!("the simulated guest agent never answered");
}

#[tokio::test]
async fn a_command_runs_through_the_guest_agent_with_its_stdin_and_output_bytes() {
    let Some((sim, hv)) = running_vm(true).await else {
        return;
    };
    let vmid = spec(9001).vmid;
    let exec = hv.guest_exec().expect("PVE offers guest exec");
    // Stopped: the agent is not there, typed.
    let err = exec.exec(vmid, &req(&["true"], None)).await.unwrap_err();
    assert!(
        matches!(&err, GuestExecError::AgentUnavailable(m) if m.contains("not running")),
        "{err:?}"
    );
    hv.start(vmid, None).await.unwrap();
    wait_for_agent(&hv).await;
    // The default simulated agent echoes the command line and the stdin; non-ASCII text comes
    // back byte for byte.
    let out = exec
        .exec(
            vmid,
            &req(&["echo", "héllo wörld"], Some("in €\n".as_bytes())),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "echo héllo wörld\nin €\n"
    );
    assert!(!out.truncated);
    // A command that takes a while, dies of a signal and writes binary output.
    let seen: Arc<Mutex<Vec<SimExecCall>>> = Arc::default();
    let record = Arc::clone(&seen);
    sim.set_guest_exec(Arc::new(move |call: &SimExecCall| {
        record.lock().unwrap().push(call.clone());
        SimExecResult {
            exitcode: None,
            signal: Some(9),
            stdout: vec![0xff, 0x00, 0xc3, b'x'],
            stderr: b"killed".to_vec(),
            runs_for: Duration::from_millis(300),
        }
    }));
    sim.clear_requests();
    let out = exec
        .exec(vmid, &req(&["sh", "-c", "kill -9 $$"], None))
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.signal), (137, Some(9)));
    assert_eq!(out.stdout, vec![0xff, 0x00, 0xc3, b'x']);
    assert_eq!(out.stderr, b"killed");
    assert_eq!(
        seen.lock().unwrap()[0].command,
        ["sh", "-c", "kill -9 $$"],
        "the command reaches the agent as an array, in order"
    );
    let polls = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/agent/exec-status"))
        .count();
    assert!(
        polls >= 2,
        "exec-status was polled until exited ({polls} polls)"
    );
    // Output over the cap is cut and flagged.
    let mut small = req(&["yes"], None);
    small.max_output = 2;
    let out = exec.exec(vmid, &small).await.unwrap();
    assert_eq!(out.stdout, vec![0xff, 0x00]);
    assert!(out.truncated);
    // A command that outlives the timeout.
    sim.set_guest_exec(Arc::new(|_: &SimExecCall| SimExecResult {
        exitcode: Some(0),
        runs_for: Duration::from_secs(30),
        ..SimExecResult::default()
    }));
    let mut quick = req(&["sleep", "30"], None);
    quick.timeout = Duration::from_millis(300);
    let err = exec.exec(vmid, &quick).await.unwrap_err();
    assert!(matches!(err, GuestExecError::TimedOut(_)), "{err:?}");
    // Binary stdin cannot go through PVE's text parameter: said so before any call.
    let err = exec
        .exec(vmid, &req(&["cat"], Some(&[0xff, 0xfe])))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GuestExecError::Failed(m) if m.contains("UTF-8")),
        "{err:?}"
    );
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn without_the_unrestricted_guest_agent_privilege_pve_refuses() {
    let Some((sim, hv)) = running_vm(false).await else {
        return;
    };
    let vmid = spec(9001).vmid;
    hv.start(vmid, None).await.unwrap();
    let err = hv
        .guest_exec()
        .unwrap()
        .exec(vmid, &req(&["id"], None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GuestExecError::Hypervisor(HypervisorError::Rejected { reason })
            if reason.contains("VM.GuestAgent.Unrestricted")),
        "{err:?}"
    );
    assert_schema_clean(&sim);
}
