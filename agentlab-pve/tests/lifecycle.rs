//! Scenario tests of `ProxmoxHypervisor` against the PVE simulator.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::time::Duration;

use agentlab_core::hypervisor::{BootstrapData, Hypervisor, HypervisorError, PowerState};
use agentlab_core::ids::{Vmid, WorkspaceId};
use agentlab_core::secrets::SecretValue;
use agentlab_pve::sim::{Power, SeedVm};
use common::{assert_schema_clean, setup, spec};

fn bootstrap(vmid: u32) -> BootstrapData {
    BootstrapData {
        channel_key: None,
        ssh_public_keys: Vec::new(),
        controller_url: "http://10.77.0.1:8844".into(),
        token: SecretValue::new("tok-secret-123"),
        vmid: Vmid::new(vmid).unwrap(),
    }
}

#[tokio::test]
async fn full_lifecycle_speaks_valid_pve() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    let s = spec(9001);
    let handle = hv.create(&s).await.unwrap();
    assert_eq!(handle.node, "pve1");
    hv.configure(&s).await.unwrap();
    let cfg = sim.vm_config(9001).unwrap();
    assert_eq!(cfg["tags"], "agentlab");
    assert_eq!(
        cfg["net0"],
        "virtio=02:00:00:00:23:29,bridge=vmbr1,firewall=1"
    );
    assert_eq!(cfg["ipconfig0"], format!("ip={}/16,gw=10.77.0.1", s.net.ip));
    assert_eq!(cfg["balloon"], "0");
    assert_eq!(cfg["ciupgrade"], "0");
    assert_eq!(cfg["cpulimit"], "1.5");
    assert!(cfg["scsi0"].contains("size=20G"), "{}", cfg["scsi0"]);
    assert!(
        cfg["scsi0"].starts_with("local-lvm:base-9000-disk-0/vm-9001-disk-0"),
        "linked clone: {}",
        cfg["scsi0"]
    );
    assert!(
        cfg["sshkeys"].contains("%20"),
        "strict percent-encoding: {}",
        cfg["sshkeys"]
    );

    hv.start(s.vmid, Some(&bootstrap(9001))).await.unwrap();
    let file = sim
        .guest_file(9001, "/run/agentlab/bootstrap.json")
        .expect("bootstrap written through the agent");
    let data: BootstrapData = serde_json::from_slice(&file).unwrap();
    assert_eq!(data.token.expose(), "tok-secret-123");
    assert_eq!(data.vmid.get(), 9001);
    assert_eq!(hv.status(s.vmid).await.unwrap(), PowerState::Running);
    assert_eq!(hv.guest_address(s.vmid).await.unwrap(), Some(s.net.ip));
    let managed = hv.list_managed().await.unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(
        (managed[0].vmid, managed[0].power),
        (s.vmid, PowerState::Running)
    );

    hv.stop(s.vmid, Duration::from_secs(5)).await.unwrap();
    assert_eq!(hv.status(s.vmid).await.unwrap(), PowerState::Stopped);
    hv.start(s.vmid, None).await.unwrap();
    hv.stop(s.vmid, Duration::ZERO).await.unwrap();
    assert_eq!(sim.power(9001), Some(Power::Stopped));

    hv.destroy(s.vmid).await.unwrap();
    assert!(sim.vm_config(9001).is_none());
    assert!(
        sim.volumes().values().all(|owner| *owner != 9001),
        "no disks of 9001 left: {:?}",
        sim.volumes()
    );
    assert!(matches!(
        hv.status(s.vmid).await,
        Err(HypervisorError::NotFound(_))
    ));
    assert!(
        hv.counters().transient_task_polls > 0,
        "early 'no such task' answers were tolerated"
    );
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn destroy_stops_a_running_vm_first() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    let s = spec(9002);
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    hv.start(s.vmid, None).await.unwrap();
    hv.destroy(s.vmid).await.unwrap();
    assert!(sim.vm_config(9002).is_none());
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn workspace_volumes_survive_detach_and_destroy() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    let ws = WorkspaceId::generate();
    let vol = hv.create_volume(&ws, 10).await.unwrap();
    assert_eq!(vol.0, format!("local-lvm:vm-999999000-{ws}"));
    let s = spec(9003);
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    hv.attach_volume(s.vmid, &vol).await.unwrap();
    let again = hv.attach_volume(s.vmid, &vol).await;
    assert!(
        matches!(again, Err(HypervisorError::Conflict(_))),
        "{again:?}"
    );
    let del = hv.delete_volume(&vol).await;
    assert!(
        matches!(del, Err(HypervisorError::Conflict(_))),
        "attached volumes are not freed: {del:?}"
    );
    assert!(sim.vm_config(9003).unwrap()["scsi1"].starts_with(&vol.0));
    hv.detach_volume(s.vmid, &vol).await.unwrap();
    let cfg = sim.vm_config(9003).unwrap();
    assert!(
        !cfg.values().any(|v| v.contains(&vol.0)),
        "fully unlinked: {cfg:?}"
    );
    assert!(sim.volumes().contains_key(&vol.0), "detach does not free");

    hv.attach_volume(s.vmid, &vol).await.unwrap();
    hv.start(s.vmid, None).await.unwrap();
    hv.destroy(s.vmid).await.unwrap();
    assert!(
        sim.volumes().contains_key(&vol.0),
        "destroying the sandbox keeps the workspace"
    );

    let other = agentlab_core::hypervisor::VolumeId("local-lvm:vm-999999000-ws-other".into());
    let s2 = spec(9004);
    hv.create(&s2).await.unwrap();
    hv.attach_volume(s2.vmid, &vol).await.unwrap();
    assert!(matches!(
        hv.attach_volume(s2.vmid, &other).await,
        Err(HypervisorError::Conflict(_))
    ));
    hv.detach_volume(s2.vmid, &vol).await.unwrap();
    hv.delete_volume(&vol).await.unwrap();
    assert!(!sim.volumes().contains_key(&vol.0));
    assert!(matches!(
        hv.delete_volume(&vol).await,
        Err(HypervisorError::NotFound(_))
    ));
    assert!(hv.create_volume(&ws, 1).await.is_ok());
    assert!(matches!(
        hv.create_volume(&ws, 1).await,
        Err(HypervisorError::AlreadyExists(_))
    ));
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn destroy_refuses_vms_without_the_tag() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    sim.add_vm(&SeedVm {
        running: false,
        ..SeedVm::foreign(101, "pve1")
    });
    let err = hv.destroy(Vmid::new(101).unwrap()).await.unwrap_err();
    assert!(matches!(err, HypervisorError::Rejected { .. }), "{err:?}");
    assert!(sim.vm_config(101).is_some());
    let err = hv.destroy(Vmid::new(100).unwrap()).await.unwrap_err();
    assert!(matches!(err, HypervisorError::Rejected { .. }), "{err:?}");
    assert!(matches!(
        hv.destroy(Vmid::new(4242).unwrap()).await,
        Err(HypervisorError::NotFound(_))
    ));
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn used_ids_include_foreign_vms_and_the_holder() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    let ids: Vec<u32> = hv
        .used_ids()
        .await
        .unwrap()
        .into_iter()
        .map(Vmid::get)
        .collect();
    assert!(
        ids.contains(&100) && ids.contains(&9000) && ids.contains(&999_999_000),
        "{ids:?}"
    );
    let err = hv.create(&spec(100)).await.unwrap_err();
    assert!(matches!(err, HypervisorError::AlreadyExists(_)), "{err:?}");
    assert!(hv.list_managed().await.unwrap().is_empty());
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn auto_node_places_on_most_free_memory_with_target() {
    let Some((sim, _)) = setup(|_| {}).await else {
        return;
    };
    sim.add_vm(&SeedVm {
        storage: "shared-nfs".into(),
        ..SeedVm::template(9100, "pve1")
    });
    let mut opts = common::options(&sim);
    opts.node = "auto".into();
    let hv = agentlab_pve::ProxmoxHypervisor::new(opts).unwrap();
    let s = agentlab_core::hypervisor::VmSpec {
        template_vmid: 9100,
        ..spec(9005)
    };
    let handle = hv.create(&s).await.unwrap();
    assert_eq!(handle.node, "pve2", "pve2 has the most free memory");
    assert_eq!(sim.vm_node(9005).as_deref(), Some("pve2"));
    hv.configure(&s).await.unwrap();
    hv.start(s.vmid, Some(&bootstrap(9005))).await.unwrap();
    assert!(
        sim.guest_file(9005, "/run/agentlab/bootstrap.json")
            .is_some()
    );
    hv.destroy(s.vmid).await.unwrap();
    // A local-storage template cannot be cloned to another node: placement keeps the clone
    // on the template's node instead of sending `target` (PVE: "VM uses local storage").
    let handle = hv.create(&spec(9006)).await.unwrap();
    assert_eq!(handle.node, "pve1", "local storage: the template's node");
    assert_eq!(sim.vm_node(9006).as_deref(), Some("pve1"));
    assert!(
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/9000/clone"))
            .all(|r| !r.params.iter().any(|(k, _)| k == "target")),
        "no target for a local-storage template"
    );
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn full_clone_uses_the_configured_storage() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    let s = agentlab_core::hypervisor::VmSpec {
        full_clone: true,
        ..spec(9007)
    };
    hv.create(&s).await.unwrap();
    assert!(sim.vm_config(9007).unwrap()["scsi0"].starts_with("local-lvm:vm-9007-disk-0"));
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn ids_hidden_by_acls_are_still_refused() {
    let Some((sim, hv)) = setup(|c| c.invisible_vms = vec![777]).await else {
        return;
    };
    sim.add_vm(&SeedVm::foreign(777, "pve2"));
    let ids: Vec<u32> = hv
        .used_ids()
        .await
        .unwrap()
        .into_iter()
        .map(Vmid::get)
        .collect();
    assert!(!ids.contains(&777), "the token cannot see 777");
    let err = hv.create(&spec(777)).await.unwrap_err();
    assert!(
        matches!(err, HypervisorError::AlreadyExists(_)),
        "nextid?vmid= catches it: {err:?}"
    );
    assert_eq!(sim.vm_node(777).as_deref(), Some("pve2"));
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn a_migrated_vm_is_found_on_its_new_node() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    let s = spec(9008);
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    assert_eq!(hv.status(s.vmid).await.unwrap(), PowerState::Stopped);
    assert!(sim.migrate(9008, "pve2"));
    assert_eq!(
        hv.status(s.vmid).await.unwrap(),
        PowerState::Stopped,
        "stale node cache refreshed"
    );
    assert!(sim.migrate(9008, "pve1"));
    hv.destroy(s.vmid).await.unwrap();
    assert!(sim.vm_config(9008).is_none());
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn offline_nodes_are_skipped_and_unavailable() {
    let Some((sim, _)) = setup(|c| c.nodes[1].online = false).await else {
        return;
    };
    sim.add_vm(&SeedVm {
        storage: "shared-nfs".into(),
        ..SeedVm::template(9100, "pve1")
    });
    let mut opts = common::options(&sim);
    opts.node = "auto".into();
    let hv = agentlab_pve::ProxmoxHypervisor::new(opts).unwrap();
    let s = agentlab_core::hypervisor::VmSpec {
        template_vmid: 9100,
        ..spec(9009)
    };
    assert_eq!(
        hv.create(&s).await.unwrap().node,
        "pve1",
        "offline pve2 is not chosen"
    );
    let err = hv.status(Vmid::new(100).unwrap()).await.unwrap_err();
    assert!(
        matches!(err, HypervisorError::Unavailable(_)),
        "VM on an offline node: {err:?}"
    );
    assert_schema_clean(&sim);
}
