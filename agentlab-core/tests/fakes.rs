//! The hypervisor and firewall fakes: conformance kits, fault injection, foreign VMs, boot hook.

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::time::Duration;

    use agentlab_core::fake::boot::ProcessBootHook;
    use agentlab_core::fake::firewall::{
        FirewallCall, FirewallFault, FirewallFaultKind, FirewallOp,
    };
    use agentlab_core::fake::hypervisor::{FakeOp, Fault, FaultKind};
    use agentlab_core::fake::{FakeFirewall, FakeHypervisor};
    use agentlab_core::testkit::hypervisor::{
        ConformanceEnv, firewall_conformance, hypervisor_conformance,
    };
    use agentlab_core::{
        BootstrapData, Firewall, Hypervisor, HypervisorError, PowerState, SecretValue, Vmid,
        WorkspaceId,
    };

    fn vmid(n: u32) -> Vmid {
        Vmid::new(n).unwrap()
    }

    fn bootstrap(vmid: Vmid, token: &str) -> BootstrapData {
        BootstrapData {
            channel_key: None,
            ssh_public_keys: Vec::new(),
            controller_url: "http://10.77.0.1:8844".to_owned(),
            token: SecretValue::new(token),
            vmid,
        }
    }

    #[tokio::test]
    async fn fake_hypervisor_passes_conformance() {
        let fake = FakeHypervisor::new();
        fake.seed_foreign_vm(vmid(900_000));
        fake.set_guest_address_delay_polls(3);
        hypervisor_conformance(&fake, &ConformanceEnv::fake()).await;
        assert!(
            fake.owned_vm_ids().is_empty(),
            "the kit cleans up after itself"
        );
        assert!(fake.volumes().is_empty());
        // The foreign id was skipped, and the kit never touched it.
        assert!(fake.calls_for(vmid(900_000)).is_empty());
        assert!(fake.vm(vmid(900_000)).is_some());
    }

    #[tokio::test]
    async fn fake_firewall_passes_conformance() {
        let fw = FakeFirewall::new();
        firewall_conformance(&fw).await;
        let state = fw.state();
        assert!(state.base_applied && state.sandboxes.is_empty());
        assert_eq!(fw.calls().first(), Some(&FirewallCall::EnsureBase));
    }

    #[tokio::test]
    async fn one_shot_fault_fires_once_and_leaves_no_vm() {
        let fake = FakeHypervisor::new();
        let spec = ConformanceEnv::fake().spec(vmid(500));
        fake.fail_once(
            FakeOp::Create,
            Fault::new(FaultKind::Timeout, "clone task timed out"),
        );
        let err = fake.create(&spec).await.unwrap_err();
        assert!(
            matches!(&err, HypervisorError::Timeout(m) if m == "clone task timed out"),
            "{err:?}"
        );
        assert!(
            fake.vms().is_empty(),
            "a failed create leaves nothing behind"
        );
        fake.create(&spec).await.unwrap();
        assert_eq!(fake.owned_vm_ids(), vec![vmid(500)]);
        assert_eq!(
            fake.calls()
                .iter()
                .filter(|c| c.op == FakeOp::Create)
                .count(),
            2
        );
    }

    #[tokio::test]
    async fn one_shot_faults_queue_in_order() {
        let fake = FakeHypervisor::new();
        fake.fail_once(FakeOp::UsedIds, Fault::new(FaultKind::Unavailable, "first"));
        fake.fail_once(FakeOp::UsedIds, Fault::new(FaultKind::Backend, "second"));
        assert!(matches!(
            fake.used_ids().await,
            Err(HypervisorError::Unavailable(_))
        ));
        assert!(matches!(
            fake.used_ids().await,
            Err(HypervisorError::Backend(_))
        ));
        assert!(fake.used_ids().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn sticky_fault_fires_until_cleared() {
        let fake = FakeHypervisor::new();
        let spec = ConformanceEnv::fake().spec(vmid(501));
        fake.create(&spec).await.unwrap();
        fake.fail_always(
            FakeOp::Start,
            Fault::new(FaultKind::Rejected, "no privilege"),
        );
        for _ in 0..3 {
            let err = fake.start(spec.vmid, None).await.unwrap_err();
            assert!(
                matches!(&err, HypervisorError::Rejected { reason } if reason == "no privilege")
            );
            assert_eq!(fake.status(spec.vmid).await.unwrap(), PowerState::Stopped);
        }
        // Other operations are unaffected.
        fake.configure(&spec).await.unwrap();
        fake.clear_faults();
        fake.start(spec.vmid, None).await.unwrap();
        assert_eq!(fake.status(spec.vmid).await.unwrap(), PowerState::Running);
    }

    #[tokio::test]
    async fn one_shot_fault_wins_over_sticky() {
        let fake = FakeHypervisor::new();
        fake.fail_always(
            FakeOp::ListManaged,
            Fault::new(FaultKind::Backend, "sticky"),
        );
        fake.fail_once(FakeOp::ListManaged, Fault::new(FaultKind::Conflict, "once"));
        assert!(matches!(
            fake.list_managed().await,
            Err(HypervisorError::Conflict(_))
        ));
        assert!(matches!(
            fake.list_managed().await,
            Err(HypervisorError::Backend(_))
        ));
        assert!(matches!(
            fake.list_managed().await,
            Err(HypervisorError::Backend(_))
        ));
    }

    #[tokio::test]
    async fn after_effect_fault_reports_failure_but_creates_the_vm() {
        let fake = FakeHypervisor::new();
        let spec = ConformanceEnv::fake().spec(vmid(502));
        let fault = Fault::new(FaultKind::Timeout, "task status unknown").after_effect();
        fake.fail_once(FakeOp::Create, fault);
        assert!(matches!(
            fake.create(&spec).await,
            Err(HypervisorError::Timeout(_))
        ));
        assert_eq!(
            fake.owned_vm_ids(),
            vec![spec.vmid],
            "the VM exists despite the error"
        );
        assert!(matches!(
            fake.create(&spec).await,
            Err(HypervisorError::AlreadyExists(_))
        ));
    }

    #[tokio::test]
    async fn foreign_vm_is_never_changed() {
        let fake = FakeHypervisor::new();
        let foreign = vmid(600);
        fake.seed_foreign_vm(foreign);
        let spec = ConformanceEnv::fake().spec(foreign);
        assert!(matches!(
            fake.create(&spec).await,
            Err(HypervisorError::AlreadyExists(_))
        ));
        assert!(matches!(
            fake.destroy(foreign).await,
            Err(HypervisorError::Rejected { .. })
        ));
        assert!(matches!(
            fake.configure(&spec).await,
            Err(HypervisorError::Rejected { .. })
        ));
        assert!(matches!(
            fake.start(foreign, None).await,
            Err(HypervisorError::Rejected { .. })
        ));
        let stop = fake.stop(foreign, Duration::ZERO).await;
        assert!(matches!(stop, Err(HypervisorError::Rejected { .. })));
        let vol = fake
            .create_volume(&WorkspaceId::generate(), 1)
            .await
            .unwrap();
        let attach = fake.attach_volume(foreign, &vol).await;
        assert!(matches!(attach, Err(HypervisorError::Rejected { .. })));
        assert_eq!(fake.status(foreign).await.unwrap(), PowerState::Stopped);
        assert_eq!(fake.used_ids().await.unwrap(), vec![foreign]);
        assert!(fake.list_managed().await.unwrap().is_empty());
        let vm = fake.vm(foreign).unwrap();
        assert!(!vm.ours && vm.spec.is_none() && vm.volumes.is_empty());
        assert_eq!(fake.volumes()[0].attached_to, None);
    }

    #[tokio::test]
    async fn destroy_keeps_an_attached_volume() {
        let fake = FakeHypervisor::new();
        let spec = ConformanceEnv::fake().spec(vmid(700));
        fake.create(&spec).await.unwrap();
        let ws = WorkspaceId::generate();
        let vol = fake.create_volume(&ws, 10).await.unwrap();
        assert_eq!(vol.0, format!("fake:{}", ws.as_str()));
        fake.attach_volume(spec.vmid, &vol).await.unwrap();
        assert_eq!(fake.vm(spec.vmid).unwrap().volumes, vec![vol.clone()]);
        fake.destroy(spec.vmid).await.unwrap();
        let volumes = fake.volumes();
        assert_eq!(volumes.len(), 1);
        assert_eq!((volumes[0].attached_to, volumes[0].size_gb), (None, 10));
        fake.delete_volume(&vol).await.unwrap();
    }

    #[tokio::test]
    async fn guest_address_waits_for_polls_and_start() {
        let fake = FakeHypervisor::new();
        let spec = ConformanceEnv::fake().spec(vmid(701));
        fake.create(&spec).await.unwrap();
        fake.set_guest_address_delay_polls(2);
        assert_eq!(
            fake.guest_address(spec.vmid).await.unwrap(),
            None,
            "stopped"
        );
        fake.start(spec.vmid, Some(&bootstrap(spec.vmid, "tok")))
            .await
            .unwrap();
        assert_eq!(fake.guest_address(spec.vmid).await.unwrap(), None);
        assert_eq!(fake.guest_address(spec.vmid).await.unwrap(), None);
        assert_eq!(
            fake.guest_address(spec.vmid).await.unwrap(),
            Some(spec.net.ip)
        );
        let vm = fake.vm(spec.vmid).unwrap();
        assert_eq!(vm.bootstrap.unwrap().token.expose(), "tok");
        assert_eq!(vm.starts, 1);
        let again = fake.start(spec.vmid, None).await;
        assert!(matches!(again, Err(HypervisorError::Conflict(_))));
        let configure = fake.configure(&spec).await;
        assert!(
            matches!(configure, Err(HypervisorError::Conflict(_))),
            "running VM"
        );
    }

    #[tokio::test]
    async fn latency_holds_the_effect_back_and_cancelling_leaves_nothing() {
        let fake = Arc::new(FakeHypervisor::new());
        let spec = ConformanceEnv::fake().spec(vmid(702));
        fake.set_latency(FakeOp::Create, Duration::from_secs(600));
        let task = tokio::spawn({
            let fake = Arc::clone(&fake);
            async move { fake.create(&spec).await }
        });
        while fake.calls().is_empty() {
            tokio::task::yield_now().await;
        }
        // The call is recorded, but the VM does not exist while the latency lasts.
        assert!(fake.vms().is_empty());
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert!(fake.vms().is_empty(), "a cancelled create has no effect");
        fake.set_latency(FakeOp::Create, Duration::ZERO);
        fake.create(&ConformanceEnv::fake().spec(vmid(702)))
            .await
            .unwrap();
        assert_eq!(fake.owned_vm_ids(), vec![vmid(702)]);
    }

    #[tokio::test]
    async fn firewall_faults_and_rules() {
        let fw = FakeFirewall::new();
        let net = agentlab_core::SandboxNet {
            vmid: vmid(800),
            iface: "tap800i0".to_owned(),
            mac: "02:00:00:00:03:20".to_owned(),
            ip: "10.77.0.20".parse().unwrap(),
            egress: agentlab_core::Egress::Off,
        };
        let refused = fw.allow(&net).await;
        assert!(
            matches!(refused, Err(agentlab_core::FirewallError::Rejected(_))),
            "no base yet"
        );
        fw.fail_once(
            FirewallOp::EnsureBase,
            FirewallFault::new(FirewallFaultKind::Unavailable, "nft"),
        );
        assert!(fw.ensure_base().await.is_err());
        assert!(!fw.state().base_applied, "a failed call has no effect");
        fw.ensure_base().await.unwrap();
        let fault = FirewallFault::new(FirewallFaultKind::Rejected, "set full");
        fw.fail_always(FirewallOp::Allow, fault);
        assert!(fw.allow(&net).await.is_err());
        assert!(fw.allow(&net).await.is_err());
        fw.clear_faults();
        fw.allow(&net).await.unwrap();
        assert!(fw.is_allowed(net.vmid));
        assert_eq!(fw.describe().await.unwrap().sandboxes, vec![net.clone()]);
        let allows = fw
            .calls()
            .iter()
            .filter(|c| c.op() == FirewallOp::Allow)
            .count();
        assert_eq!(allows, 4);
    }

    #[tokio::test]
    async fn process_boot_hook_delivers_bootstrap_file() {
        let dir = tempfile::tempdir().unwrap();
        let script = "cat {bootstrap} > {dir}/seen.json; echo started {vmid}";
        let hook = Arc::new(ProcessBootHook::new(dir.path(), "sh", ["-c", script]));
        let fake = FakeHypervisor::new();
        fake.set_boot_hook(hook.clone());
        let spec = ConformanceEnv::fake().spec(vmid(4242));
        fake.create(&spec).await.unwrap();
        let token = "tok-3f9a1c-distinctive";
        let data = bootstrap(spec.vmid, token);
        fake.start(spec.vmid, Some(&data)).await.unwrap();

        let status = hook.wait_for_exit(spec.vmid).await.unwrap();
        assert!(status.success());
        let vm_dir = hook.vm_dir(spec.vmid);
        let seen: BootstrapData =
            serde_json::from_str(&std::fs::read_to_string(vm_dir.join("seen.json")).unwrap())
                .unwrap();
        assert_eq!(seen, data);
        assert_eq!(seen.token.expose(), token);
        let mode = std::fs::metadata(hook.bootstrap_path(spec.vmid))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let log = std::fs::read_to_string(hook.log_path(spec.vmid)).unwrap();
        assert_eq!(log.trim(), "started 4242");
        assert!(!log.contains(token));

        fake.destroy(spec.vmid).await.unwrap();
        assert!(!vm_dir.exists(), "destroy removes the VM's directory");
    }

    #[tokio::test]
    async fn process_boot_hook_stop_kills_the_guest() {
        let dir = tempfile::tempdir().unwrap();
        let hook = Arc::new(ProcessBootHook::new(dir.path(), "sleep", ["600"]));
        let fake = FakeHypervisor::new();
        fake.set_boot_hook(hook.clone());
        let spec = ConformanceEnv::fake().spec(vmid(4243));
        fake.create(&spec).await.unwrap();
        fake.start(spec.vmid, None).await.unwrap();
        assert!(hook.is_running(spec.vmid));
        assert!(
            !hook.bootstrap_path(spec.vmid).exists(),
            "no bootstrap data, no file"
        );
        fake.stop(spec.vmid, Duration::from_secs(5)).await.unwrap();
        assert!(!hook.is_running(spec.vmid));
        assert_eq!(
            hook.wait_for_exit(spec.vmid).await,
            None,
            "the child was reaped"
        );
        assert!(hook.vm_dir(spec.vmid).exists(), "stop keeps the directory");
    }

    #[tokio::test]
    async fn boot_hook_failure_fails_start() {
        let dir = tempfile::tempdir().unwrap();
        let hook = Arc::new(ProcessBootHook::new(
            dir.path(),
            "/nonexistent/agent-runner",
            ["x"],
        ));
        let fake = FakeHypervisor::new();
        fake.set_boot_hook(hook);
        let spec = ConformanceEnv::fake().spec(vmid(4244));
        fake.create(&spec).await.unwrap();
        let err = fake
            .start(spec.vmid, Some(&bootstrap(spec.vmid, "secret-tok")))
            .await
            .unwrap_err();
        assert!(matches!(err, HypervisorError::Backend(_)));
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        assert!(
            text.contains("/nonexistent/agent-runner") && !text.contains("secret-tok"),
            "{text}"
        );
        assert_eq!(fake.status(spec.vmid).await.unwrap(), PowerState::Stopped);
    }

    #[tokio::test]
    async fn persistent_fake_survives_a_restart_without_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake-hypervisor.json");
        let spec = ConformanceEnv::fake().spec(vmid(710));
        let token = "tok-persist-9b1e-distinctive";
        let vol = {
            let fake = FakeHypervisor::persistent(&path).unwrap();
            fake.seed_foreign_vm(vmid(711));
            fake.create(&spec).await.unwrap();
            let vol = fake
                .create_volume(&WorkspaceId::generate(), 2)
                .await
                .unwrap();
            fake.attach_volume(spec.vmid, &vol).await.unwrap();
            fake.start(spec.vmid, Some(&bootstrap(spec.vmid, token)))
                .await
                .unwrap();
            vol
        };
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(token),
            "the bootstrap token is never written"
        );

        let fake = FakeHypervisor::persistent(&path).unwrap();
        assert_eq!(fake.owned_vm_ids(), vec![spec.vmid]);
        assert_eq!(fake.used_ids().await.unwrap(), vec![spec.vmid, vmid(711)]);
        assert_eq!(fake.status(spec.vmid).await.unwrap(), PowerState::Running);
        let vm = fake.vm(spec.vmid).unwrap();
        assert_eq!(
            (vm.spec, vm.volumes, vm.bootstrap),
            (Some(spec.clone()), vec![vol.clone()], None)
        );
        assert_eq!(fake.volumes()[0].attached_to, Some(spec.vmid));
        let destroy = fake.destroy(vmid(711)).await;
        assert!(
            matches!(destroy, Err(HypervisorError::Rejected { .. })),
            "still foreign"
        );

        fake.stop(spec.vmid, Duration::ZERO).await.unwrap();
        fake.destroy(spec.vmid).await.unwrap();
        fake.delete_volume(&vol).await.unwrap();
        let fake = FakeHypervisor::persistent(&path).unwrap();
        assert!(fake.owned_vm_ids().is_empty() && fake.volumes().is_empty());
    }

    #[tokio::test]
    async fn process_boot_hook_stops_a_guest_started_before_a_restart() {
        use agentlab_core::fake::boot::{BootEvent, BootHook};
        let dir = tempfile::tempdir().unwrap();
        let before = ProcessBootHook::new(dir.path(), "sleep", ["600"]);
        let spec = ConformanceEnv::fake().spec(vmid(4245));
        let event = BootEvent {
            vmid: spec.vmid,
            bootstrap: None,
            spec: spec.clone(),
        };
        before.on_start(&event).unwrap();
        assert!(before.is_running(spec.vmid));
        // A new hook on the same directory (the daemon restarted) did not spawn the guest,
        // but destroying the VM still stops it and removes its directory.
        let after = ProcessBootHook::new(dir.path(), "sleep", ["600"]);
        after.on_destroy(spec.vmid);
        let status = before.wait_for_exit(spec.vmid).await.unwrap();
        assert!(!status.success(), "the guest was killed");
        assert!(!after.vm_dir(spec.vmid).exists());
    }
}
