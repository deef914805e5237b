//! The QEMU backend for real (root, qemu-system-x86_64 under TCG, the tiny test image): the
//! hypervisor conformance suite on microvm and q35, a daemon restart finding a running VM
//! again, and the boot deadline killing a guest whose agent never answers.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use agentlab_core::config::QemuMachine;
    use agentlab_core::testkit::hypervisor::hypervisor_conformance;
    use agentlab_core::{Hypervisor, HypervisorError, PowerState, Vmid};

    use super::support::{Lab, privileged};

    fn vmid(n: u32) -> Vmid {
        Vmid::new(n).expect("vmid")
    }

    async fn conformance_on(tag: &str, machine: QemuMachine) {
        if !privileged() {
            return;
        }
        let lab = Lab::new(tag, machine);
        let hv = lab.hv();
        hypervisor_conformance(&hv, &lab.env()).await;
        assert!(lab.taps().is_empty(), "taps left: {:?}", lab.taps());
        assert!(lab.qemu_procs().is_empty(), "QEMU left running");
        let left: Vec<_> = std::fs::read_dir(&lab.opts.state_dir)
            .expect("state dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n != "volumes")
            .collect();
        assert!(left.is_empty(), "VM directories left: {left:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn conformance_microvm() {
        conformance_on("m", QemuMachine::Microvm).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn conformance_q35() {
        conformance_on("q", QemuMachine::Q35).await;
    }

    /// A new backend over the same state (a restarted daemon) finds the running VM by pid
    /// file, command line and QMP socket, reads its address and destroys it cleanly.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_restarted_backend_finds_the_running_vm() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("r", QemuMachine::Microvm);
        let env = lab.env();
        let spec = env.spec(vmid(9301));
        let first = lab.hv();
        first.create(&spec).await.expect("create");
        first.configure(&spec).await.expect("configure");
        first.start(spec.vmid, None).await.expect("start");
        let pid = first.qemu_pid(spec.vmid).expect("pid");
        let rss = first.qemu_rss_kib(spec.vmid).expect("rss");
        assert!(rss > 10_000, "QEMU RSS {rss} KiB");
        // The same figures through the engine's optional ability (`sandbox show`).
        let usage = first
            .process_usage()
            .expect("qemu reports process usage")
            .usage(spec.vmid)
            .await
            .expect("usage")
            .expect("running");
        assert_eq!(i64::from(usage.pid), i64::from(pid));
        assert!(usage.rss_bytes > 10_000 * 1024, "{usage:?}");
        assert!(usage.cpu_seconds > 0.0, "{usage:?}");
        // QEMU runs under its seccomp filter (`-sandbox`): mode 2 in every thread's status.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"]),
            "QEMU runs without its seccomp filter:\n{status}"
        );
        drop(first);

        let second = lab.hv();
        assert_eq!(
            second.status(spec.vmid).await.expect("status"),
            PowerState::Running
        );
        assert_eq!(second.qemu_pid(spec.vmid), Some(pid));
        let managed = second.list_managed().await.expect("list");
        assert!(
            managed
                .iter()
                .any(|m| m.vmid == spec.vmid && m.power == PowerState::Running)
        );
        assert_eq!(
            second.guest_address(spec.vmid).await.expect("address"),
            Some(env.guest_ip)
        );
        second.destroy(spec.vmid).await.expect("destroy");
        assert!(lab.qemu_procs().is_empty(), "QEMU left running");
        assert!(lab.taps().is_empty(), "taps left: {:?}", lab.taps());
    }

    /// A guest whose agent never comes up is killed at the boot deadline: start fails with
    /// `Timeout` and nothing keeps running.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_boot_deadline_kills_a_silent_guest() {
        if !privileged() {
            return;
        }
        let mut lab = Lab::new("t", QemuMachine::Microvm);
        // The kernel finds no init and panics into a halt (no reboot): no agent ever answers.
        lab.opts.kernel_cmdline =
            Some("quiet rdinit=/nonexistent init=/nonexistent panic=0".to_owned());
        lab.opts.boot_timeout = Duration::from_secs(8);
        let hv = lab.hv();
        let spec = lab.env().spec(vmid(9302));
        hv.create(&spec).await.expect("create");
        let began = Instant::now();
        let err = hv.start(spec.vmid, None).await.expect_err("no agent");
        assert!(
            matches!(
                err,
                HypervisorError::Timeout(_) | HypervisorError::Backend(_)
            ),
            "{err:?}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "deadline not kept"
        );
        assert_eq!(
            hv.status(spec.vmid).await.expect("status"),
            PowerState::Stopped
        );
        assert!(lab.qemu_procs().is_empty(), "QEMU left running");
        assert!(lab.taps().is_empty(), "taps left: {:?}", lab.taps());
        hv.destroy(spec.vmid).await.expect("destroy");
    }
}
