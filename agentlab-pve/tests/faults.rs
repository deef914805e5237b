//! Injected PVE failures become typed errors naming the PVE call, and leave nothing behind;
//! concurrent clones under lock contention all succeed.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::hypervisor::{BootstrapData, Hypervisor, HypervisorError, PowerState};
use agentlab_core::ids::Vmid;
use agentlab_core::secrets::SecretValue;
use agentlab_pve::ProxmoxHypervisor;
use agentlab_pve::sim::{FaultKind, FaultRule, Power};
use common::{assert_schema_clean, setup, spec};

fn chain(e: &HypervisorError) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(" <- ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

fn vmid(n: u32) -> Vmid {
    Vmid::new(n).unwrap()
}

#[tokio::test]
async fn twenty_concurrent_clones_under_lock_contention() {
    let Some((sim, hv)) = setup(|c| {
        c.lock_timeout = Duration::from_millis(15);
        c.clone_duration = Duration::from_millis(10);
    })
    .await
    else {
        return;
    };
    let lock_msg =
        "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout";
    sim.add_fault(
        FaultRule::always("POST", "/clone", FaultKind::TaskFailure(lock_msg.into())).times(3),
    );
    let hv = Arc::new(hv);
    let mut handles = Vec::new();
    for i in 0..20 {
        let hv = Arc::clone(&hv);
        handles.push(tokio::spawn(async move {
            let s = spec(9200 + i);
            hv.create(&s).await?;
            hv.configure(&s).await?;
            Ok::<_, HypervisorError>(s.vmid)
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap().unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    let counters = hv.counters();
    assert!(counters.lock_retries >= 3, "{counters:?}");
    assert!(
        counters.clone_permit_waits > 0,
        "clones were bounded per template: {counters:?}"
    );
    let managed = hv.list_managed().await.unwrap();
    assert_eq!(managed.len(), 20);
    for id in &ids {
        let cfg = sim.vm_config(id.get()).unwrap();
        assert!(!cfg.contains_key("lock"));
        assert_eq!(cfg["tags"], "agentlab");
    }
    let macs: std::collections::BTreeSet<String> = ids
        .iter()
        .map(|id| sim.vm_config(id.get()).unwrap()["net0"].clone())
        .collect();
    assert_eq!(macs.len(), 20, "no two sandboxes share a NIC");
    for id in ids {
        hv.destroy(id).await.unwrap();
    }
    assert_eq!(sim.vm_ids(), vec![100, 9000], "nothing leaked");
    assert!(
        sim.volumes().values().all(|o| *o == 100 || *o == 9000),
        "{:?}",
        sim.volumes()
    );
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn failed_clone_names_the_call_and_leaves_nothing() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    sim.add_fault(FaultRule::always(
        "POST",
        "/clone",
        FaultKind::TaskFailure("clone failed: storage exploded".into()),
    ));
    let err = hv.create(&spec(9101)).await.unwrap_err();
    assert!(matches!(err, HypervisorError::Backend(_)), "{err:?}");
    let text = chain(&err);
    assert!(
        text.contains("POST /nodes/pve1/qemu/9000/clone") && text.contains("storage exploded"),
        "{text}"
    );
    assert!(sim.vm_config(9101).is_none());
    sim.clear_faults();
    sim.add_fault(FaultRule::always(
        "POST",
        "/clone",
        FaultKind::Http {
            status: 403,
            message: "Permission check failed (/vms/9101, VM.Allocate)".into(),
        },
    ));
    let err = hv.create(&spec(9101)).await.unwrap_err();
    assert!(
        matches!(&err, HypervisorError::Rejected { reason } if reason.contains("POST /nodes/pve1/qemu/9000/clone")),
        "{err:?}"
    );
    assert!(sim.vm_config(9101).is_none());
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn lock_timeouts_become_conflict_after_retries() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    let s = spec(9102);
    hv.create(&s).await.unwrap();
    sim.add_fault(FaultRule::always(
        "PUT",
        "/qemu/9102/config",
        FaultKind::LockTimeout,
    ));
    let err = hv.configure(&s).await.unwrap_err();
    assert!(
        matches!(&err, HypervisorError::Conflict(m) if m.contains("PUT /nodes/pve1/qemu/9102/config") && m.contains("can't lock file")),
        "{err:?}"
    );
    assert_eq!(hv.counters().lock_retries, 12);
    sim.clear_faults();
    sim.add_fault(FaultRule::always("PUT", "/qemu/9102/config", FaultKind::LockTimeout).times(2));
    hv.configure(&s).await.unwrap();
    hv.destroy(s.vmid).await.unwrap();
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn failures_at_each_later_step_are_typed() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    let s = spec(9103);
    hv.create(&s).await.unwrap();

    sim.add_fault(
        FaultRule::always(
            "PUT",
            "/resize",
            FaultKind::TaskFailure("disk resize failed: no space".into()),
        )
        .times(1),
    );
    let err = hv.configure(&s).await.unwrap_err();
    assert!(
        chain(&err).contains("PUT /nodes/pve1/qemu/9103/resize"),
        "{}",
        chain(&err)
    );
    hv.configure(&s).await.unwrap();

    sim.add_fault(
        FaultRule::always(
            "POST",
            "/status/start",
            FaultKind::Http {
                status: 503,
                message: "Service Unavailable".into(),
            },
        )
        .times(1),
    );
    let err = hv.start(s.vmid, None).await.unwrap_err();
    assert!(
        matches!(err, HypervisorError::Backend(_))
            && chain(&err).contains("POST /nodes/pve1/qemu/9103/status/start"),
        "{}",
        chain(&err)
    );
    assert_eq!(sim.power(9103), Some(Power::Stopped));

    let boot = BootstrapData {
        channel_key: None,
        ssh_public_keys: Vec::new(),
        controller_url: "http://10.77.0.1:8844".into(),
        token: SecretValue::new("t0k"),
        vmid: s.vmid,
    };
    sim.add_fault(
        FaultRule::always(
            "POST",
            "/agent/file-write",
            FaultKind::Http {
                status: 500,
                message: "Agent error: No space left on device".into(),
            },
        )
        .times(1),
    );
    let err = hv.start(s.vmid, Some(&boot)).await.unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("POST /nodes/pve1/qemu/9103/agent/file-write")
            && text.contains("No space left"),
        "{text}"
    );
    assert!(!text.contains("t0k"), "the token never appears in errors");

    sim.add_fault(FaultRule::always("GET", "/status/current", FaultKind::Drop));
    let err = hv.status(s.vmid).await.unwrap_err();
    assert!(
        matches!(err, HypervisorError::Unavailable(_))
            && chain(&err).contains("GET /nodes/pve1/qemu/9103/status/current"),
        "{}",
        chain(&err)
    );
    sim.clear_faults();
    assert_eq!(hv.status(s.vmid).await.unwrap(), PowerState::Running);

    sim.add_fault(FaultRule::always(
        "POST",
        "/status/shutdown",
        FaultKind::TaskFailure("VM quit/powerdown failed - got timeout".into()),
    ));
    hv.stop(s.vmid, Duration::from_secs(3)).await.unwrap();
    assert_eq!(
        sim.power(9103),
        Some(Power::Stopped),
        "hard stop after a failed shutdown"
    );

    sim.add_fault(
        FaultRule::always(
            "DELETE",
            "/qemu/9103",
            FaultKind::TaskFailure("unable to remove VM 9103".into()),
        )
        .times(1),
    );
    let err = hv.destroy(s.vmid).await.unwrap_err();
    assert!(
        chain(&err).contains("DELETE /nodes/pve1/qemu/9103"),
        "{}",
        chain(&err)
    );
    sim.add_fault(FaultRule::always(
        "GET",
        "/cluster/resources",
        FaultKind::Latency(Duration::from_millis(20)),
    ));
    hv.destroy(s.vmid).await.unwrap();
    assert!(sim.vm_config(9103).is_none());
    assert_eq!(sim.vm_ids(), vec![100, 9000]);
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn agent_that_never_answers_times_out() {
    let Some((sim, _)) = setup(|c| c.agent_delay = Duration::from_secs(3600)).await else {
        return;
    };
    let mut opts = common::options(&sim);
    opts.poll.agent_timeout_ms = 50;
    let hv = ProxmoxHypervisor::new(opts).unwrap();
    let s = spec(9104);
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    let boot = BootstrapData {
        channel_key: None,
        ssh_public_keys: Vec::new(),
        controller_url: "http://10.77.0.1:8844".into(),
        token: SecretValue::new("t"),
        vmid: s.vmid,
    };
    let err = hv.start(s.vmid, Some(&boot)).await.unwrap_err();
    assert!(
        matches!(&err, HypervisorError::Timeout(m) if m.contains("/agent/ping")),
        "{err:?}"
    );
    assert!(hv.counters().agent_polls > 0);
    assert_eq!(
        hv.guest_address(s.vmid).await.unwrap(),
        None,
        "agent not up: no address yet"
    );
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn unreachable_api_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut opts = agentlab_pve::PveOptions::new(
        format!("http://127.0.0.1:{port}"),
        "a@pve!t",
        SecretValue::new("s"),
        "local-lvm",
    );
    opts.poll = common::fast_poll();
    let hv = ProxmoxHypervisor::new(opts).unwrap();
    let err = hv.used_ids().await.unwrap_err();
    assert!(matches!(err, HypervisorError::Unavailable(_)), "{err:?}");
    assert!(
        chain(&err).contains("GET /cluster/resources"),
        "{}",
        chain(&err)
    );
    let _ = vmid(100);
}

#[tokio::test]
async fn legacy_servers_send_the_error_only_in_the_reason_phrase() {
    let Some((sim, hv)) = setup(|c| c.legacy_errors = true).await else {
        return;
    };
    let s = spec(9105);
    hv.create(&s).await.unwrap();
    sim.add_fault(FaultRule::always("PUT", "/qemu/9105/config", FaultKind::LockTimeout).times(1));
    hv.configure(&s).await.unwrap();
    assert_eq!(
        hv.counters().lock_retries,
        1,
        "lock timeout recognised from the reason phrase"
    );
    sim.add_fault(
        FaultRule::always(
            "GET",
            "/status/current",
            FaultKind::Http {
                status: 500,
                message: "Configuration file 'nodes/pve1/qemu-server/9105.conf' does not exist"
                    .into(),
            },
        )
        .times(1),
    );
    assert!(matches!(
        hv.status(s.vmid).await,
        Err(HypervisorError::NotFound(_))
    ));
    hv.destroy(s.vmid).await.unwrap();
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn missing_privileges_are_rejected_naming_the_call() {
    let Some((sim, hv)) = setup(|c| {
        if let Some(vms) = c.permissions.get_mut("/vms") {
            vms.remove("VM.GuestAgent.FileWrite");
        }
    })
    .await
    else {
        return;
    };
    let s = spec(9106);
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    let boot = BootstrapData {
        channel_key: None,
        ssh_public_keys: Vec::new(),
        controller_url: "http://10.77.0.1:8844".into(),
        token: SecretValue::new("t"),
        vmid: s.vmid,
    };
    let err = hv.start(s.vmid, Some(&boot)).await.unwrap_err();
    assert!(
        matches!(&err, HypervisorError::Rejected { reason } if reason.contains("POST /nodes/pve1/qemu/9106/agent/file-write")
            && reason.contains("Permission check failed (/vms/9106, VM.GuestAgent.FileWrite)")),
        "{err:?}"
    );
    let results = agentlab_pve::doctor(hv.options(), common::TEMPLATE).await;
    let privs = results.iter().find(|r| r.name == "privileges").unwrap();
    assert!(
        !privs.ok && privs.detail.contains("VM.GuestAgent.FileWrite"),
        "{privs:?}"
    );
    hv.destroy(s.vmid).await.unwrap();
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn a_clone_that_cannot_be_marked_is_removed_and_later_failures_stay_destroyable() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    sim.add_fault(
        FaultRule::always(
            "PUT",
            "/qemu/9107/config",
            FaultKind::Http {
                status: 500,
                message: "boom".into(),
            },
        )
        .times(1),
    );
    let err = hv.create(&spec(9107)).await.unwrap_err();
    assert!(
        chain(&err).contains("PUT /nodes/pve1/qemu/9107/config") && chain(&err).contains("boom"),
        "{}",
        chain(&err)
    );
    assert!(
        sim.vm_config(9107).is_none(),
        "the untagged clone was removed"
    );

    let s = spec(9108);
    hv.create(&s).await.unwrap();
    let cfg = sim.vm_config(9108).unwrap();
    assert_eq!(cfg["tags"], "agentlab", "marked right after the clone");
    assert!(cfg["description"].starts_with("Managed by AgentLab"));
    sim.add_fault(FaultRule::always(
        "PUT",
        "/qemu/9108/config",
        FaultKind::Http {
            status: 500,
            message: "config exploded".into(),
        },
    ));
    assert!(hv.configure(&s).await.is_err());
    sim.clear_faults();
    hv.destroy(s.vmid).await.unwrap();
    assert_eq!(sim.vm_ids(), vec![100, 9000], "nothing left behind");
    assert_schema_clean(&sim);
}
