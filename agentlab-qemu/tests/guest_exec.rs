//! The exec fallback's QEMU side for real: a command run through the tiny image's real
//! `qemu-ga` (`guest-exec` + `guest-exec-status`) in a VM under TCG (root; see
//! `tests/support`).

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use agentlab_core::config::QemuMachine;
    use agentlab_core::hypervisor::{GuestExecError, GuestExecRequest};
    use agentlab_core::{Hypervisor, Vmid};

    use super::support::{Lab, privileged};

    fn req(argv: &[&str], input: Option<&[u8]>) -> GuestExecRequest {
        GuestExecRequest {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            input: input.map(<[u8]>::to_vec),
            timeout: Duration::from_secs(60),
            max_output: 1 << 20,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_command_runs_through_the_real_guest_agent() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("x", QemuMachine::Microvm);
        let hv = lab.hv();
        let spec = lab.env().spec(Vmid::new(9311).expect("vmid"));
        hv.create(&spec).await.expect("create");
        hv.configure(&spec).await.expect("configure");
        let exec = hv.guest_exec().expect("qemu offers guest exec");
        // Stopped: no agent to ask.
        let err = exec
            .exec(spec.vmid, &req(&["/bin/true"], None))
            .await
            .expect_err("stopped");
        assert!(
            matches!(err, GuestExecError::AgentUnavailable(_)),
            "{err:?}"
        );
        hv.start(spec.vmid, None).await.expect("start");
        // Stdin, stdout, stderr and the exit code, with binary bytes intact.
        let out = exec
            .exec(
                spec.vmid,
                &req(
                    &["/bin/sh", "-c", "echo out; echo err >&2; cat; exit 3"],
                    Some(b"in\x00\xff"),
                ),
            )
            .await
            .expect("exec");
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.stdout, b"out\nin\x00\xff");
        assert_eq!(out.stderr, b"err\n");
        assert!(!out.truncated);
        // Round trip of a trivial command (printed, not asserted: speed lives in benches).
        let mut took = Vec::new();
        for _ in 0..5 {
            let began = std::time::Instant::now();
            exec.exec(spec.vmid, &req(&["/bin/true"], None))
                .await
                .expect("true");
            took.push(began.elapsed());
        }
        took.sort();
        eprintln!(
            "guest-exec round trip of /bin/true (TCG, microvm): median {:?}, max {:?}",
            took[2], took[4]
        );
        // A command killed by a signal.
        let out = exec
            .exec(spec.vmid, &req(&["/bin/sh", "-c", "kill -9 $$"], None))
            .await
            .expect("exec");
        assert_eq!((out.exit_code, out.signal), (137, Some(9)), "{out:?}");
        // Output over the cap.
        let mut big = req(&["/bin/sh", "-c", "head -c 100000 /dev/zero"], None);
        big.max_output = 1000;
        let out = exec.exec(spec.vmid, &big).await.expect("exec");
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.truncated);
        // No such program: the agent's own message.
        let err = exec
            .exec(spec.vmid, &req(&["/nonexistent"], None))
            .await
            .expect_err("no program");
        assert!(matches!(err, GuestExecError::Failed(_)), "{err:?}");
        // Past its timeout.
        let mut slow = req(&["/bin/sleep", "30"], None);
        slow.timeout = Duration::from_secs(2);
        let err = exec.exec(spec.vmid, &slow).await.expect_err("timeout");
        assert!(matches!(err, GuestExecError::TimedOut(_)), "{err:?}");
        // The agent still serves the backend (the address poll) afterwards.
        assert!(
            hv.guest_address(spec.vmid)
                .await
                .expect("address")
                .is_some()
        );
        hv.destroy(spec.vmid).await.expect("destroy");
        assert!(lab.qemu_procs().is_empty(), "QEMU left running");
    }
}
