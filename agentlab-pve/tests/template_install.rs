//! `agentlab template install` against the simulator: upload (multipart, content `import`),
//! create with `import-from`, convert to a template; idempotence, `--replace`, foreign VMs
//! left alone, one template per node with local storage; then a sandbox from the template.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::sync::{Arc, Mutex};

use agentlab_core::hypervisor::{BootstrapData, Hypervisor};
use agentlab_core::ids::Vmid;
use agentlab_core::secrets::SecretValue;
use agentlab_pve::sim::{SeedVm, SimConfig};
use agentlab_pve::template::{Action, InstallStep, TemplateSpec, install, parse_marker};
use agentlab_pve::{ProxmoxHypervisor, PveError};
use common::{assert_schema_clean, options, spec};

fn with_import(cfg: &mut SimConfig) {
    for s in &mut cfg.storages {
        if s.id == "local" {
            s.content.push("import".into());
        }
    }
}

fn template_spec(dir: &std::path::Path, manifest: &str) -> TemplateSpec {
    let disk = dir.join("disk.qcow2");
    std::fs::write(&disk, vec![7u8; 300 * 1024]).unwrap();
    let sum = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(&disk).unwrap()))
    };
    TemplateSpec {
        name: "agentlab-default".into(),
        vmid: Some(9100),
        disk,
        manifest_sha256: manifest.into(),
        disk_sha256: format!("sha256:{sum}"),
        guest_protocol: 1,
        import_storage: "local".into(),
        memory_mb: 2048,
        cores: 2,
        replace: false,
    }
}

type Steps = Arc<Mutex<Vec<InstallStep>>>;

fn recorder() -> (Steps, agentlab_pve::template::InstallProgress) {
    let steps: Steps = Arc::default();
    let s2 = Arc::clone(&steps);
    (
        steps,
        Arc::new(move |s: &InstallStep| s2.lock().unwrap().push(s.clone())),
    )
}

#[tokio::test]
async fn install_is_idempotent_per_node_and_a_sandbox_clones_from_it() {
    let Some((sim, _)) = common::setup(with_import).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&sim);
    let spec_a = template_spec(dir.path(), "sha256:aaaa");
    let (steps, progress) = recorder();

    // Local storages: one template per node, distinct vmids.
    let done = install(&opts, &spec_a, &[], progress.clone())
        .await
        .unwrap();
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!((done[0].node.as_str(), done[0].vmid), ("pve1", 9100));
    assert_eq!(done[1].node, "pve2");
    assert_ne!(done[1].vmid, 9100);
    assert!(done.iter().all(|d| d.action == Action::Installed));
    assert_eq!(done[0].serves, ["pve1"]);
    for d in &done {
        let cfg = sim.vm_config(d.vmid).unwrap();
        assert_eq!(sim.vm_node(d.vmid).as_deref(), Some(d.node.as_str()));
        assert_eq!(cfg["template"], "1");
        assert!(
            cfg["scsi0"].starts_with(&format!("local-lvm:base-{}-disk-0", d.vmid)),
            "{}",
            cfg["scsi0"]
        );
        assert!(cfg["ide2"].contains("cloudinit"), "{}", cfg["ide2"]);
        assert_eq!(cfg["agent"], "enabled=1");
        assert_eq!(cfg["serial0"], "socket");
        assert!(
            cfg["net0"].starts_with("virtio=") && cfg["net0"].ends_with("bridge=vmbr1"),
            "{}",
            cfg["net0"]
        );
        assert!(cfg["tags"].contains("agentlab-template"), "{}", cfg["tags"]);
        let m = parse_marker(&cfg["description"]).expect("marker");
        assert_eq!((m.manifest.as_str(), m.guest_protocol), ("sha256:aaaa", 1));
        assert!(!cfg.contains_key("lock"));
    }
    let uploads = |sim: &agentlab_pve::sim::Simulator| {
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/upload"))
            .count()
    };
    assert_eq!(uploads(&sim), 2, "one upload per node (local storage)");
    let upload = sim
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/upload"))
        .unwrap();
    assert!(
        upload.params.contains(&("content".into(), "import".into())),
        "{:?}",
        upload.params
    );
    let progressed = steps.lock().unwrap().iter().any(|s| matches!(s, InstallStep::Upload { sent, total, .. } if sent == total && *total == 300 * 1024));
    assert!(progressed, "upload progress reported");

    // Same manifest again: nothing to do, no upload.
    let again = install(&opts, &spec_a, &[], progress.clone())
        .await
        .unwrap();
    assert!(
        again.iter().all(|d| d.action == Action::Unchanged),
        "{again:?}"
    );
    assert_eq!(uploads(&sim), 2);

    // Another manifest: refused without --replace, replaced in place with it.
    let mut spec_b = template_spec(dir.path(), "sha256:bbbb");
    let err = install(&opts, &spec_b, &["pve1".into()], progress.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PveError::Refused(_)) && err.to_string().contains("--replace"),
        "{err}"
    );
    spec_b.replace = true;
    let replaced = install(&opts, &spec_b, &["pve1".into()], progress.clone())
        .await
        .unwrap();
    assert_eq!(
        (replaced[0].vmid, &replaced[0].action),
        (9100, &Action::Replaced)
    );
    let m = parse_marker(&sim.vm_config(9100).unwrap()["description"]).unwrap();
    assert_eq!(m.manifest, "sha256:bbbb");

    // A sandbox from the installed template: linked clone, configured, started, bootstrapped.
    let hv = ProxmoxHypervisor::new(opts.clone()).unwrap();
    let mut s = spec(9201);
    s.template_vmid = 9100;
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    let cfg = sim.vm_config(9201).unwrap();
    assert!(
        cfg["scsi0"].starts_with("local-lvm:base-9100-disk-0/vm-9201-disk-0"),
        "{}",
        cfg["scsi0"]
    );
    let boot = BootstrapData {
        channel_key: None,
        ssh_public_keys: Vec::new(),
        controller_url: "http://10.77.0.1:8844".into(),
        token: SecretValue::new("tok-from-template"),
        vmid: Vmid::new(9201).unwrap(),
    };
    hv.start(s.vmid, Some(&boot)).await.unwrap();
    assert!(
        sim.guest_file(9201, "/run/agentlab/bootstrap.json")
            .is_some()
    );
    // The template cannot be replaced while a linked clone uses it… and the clone goes away.
    hv.destroy(s.vmid).await.unwrap();
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn foreign_vms_are_never_touched_and_shared_storage_serves_all_nodes() {
    let Some((sim, _)) = common::setup(|cfg| {
        with_import(cfg);
        for s in &mut cfg.storages {
            if s.id == "shared-nfs" {
                s.content.push("import".into());
            }
        }
    })
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, progress) = recorder();
    let mut foreign = SeedVm::foreign(9100, "pve1");
    foreign.name = "agentlab-default".into();
    foreign.running = false;
    sim.add_vm(&foreign);
    let before = sim.vm_config(9100).unwrap();
    let mut spec = template_spec(dir.path(), "sha256:cccc");
    spec.replace = true;
    let err = install(&options(&sim), &spec, &["pve1".into()], progress.clone())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not an AgentLab template"),
        "{err}"
    );
    assert_eq!(sim.vm_config(9100).unwrap(), before, "foreign VM untouched");

    // Shared import and disk storage: one template on the first node serves both.
    let mut opts = options(&sim);
    opts.storage = "shared-nfs".into();
    spec.vmid = None;
    spec.name = "agentlab-shared".into();
    spec.import_storage = "shared-nfs".into();
    let done = install(&opts, &spec, &[], progress).await.unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].serves, ["pve1", "pve2"]);
    assert_eq!(sim.vm_config(9100).unwrap(), before);
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn doctor_checks_marker_protocol_and_a_copy_per_node() {
    let Some((sim, _)) = common::setup(with_import).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, progress) = recorder();
    let mut opts = options(&sim);
    opts.node = "auto".into();
    let check = |results: &[agentlab_pve::CheckResult], name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} check in {results:?}"))
    };
    // The seeded template 9000 was made by hand: no marker.
    let r = agentlab_pve::doctor(&opts, common::TEMPLATE).await;
    assert!(!check(&r, "template.marker").ok, "{r:?}");

    let spec = template_spec(dir.path(), "sha256:dddd");
    let done = install(&opts, &spec, &["pve1".into()], progress.clone())
        .await
        .unwrap();
    let r = agentlab_pve::doctor(&opts, done[0].vmid).await;
    assert!(check(&r, "template.marker").ok, "{r:?}");
    assert!(check(&r, "template.protocol").ok, "{r:?}");
    let nodes = check(&r, "template.nodes");
    assert!(!nodes.ok && nodes.detail.contains("pve2"), "{nodes:?}");
    assert!(nodes.fix.unwrap().contains("--node pve2"));

    install(&opts, &spec, &["pve2".into()], progress)
        .await
        .unwrap();
    let r = agentlab_pve::doctor(&opts, done[0].vmid).await;
    let nodes = check(&r, "template.nodes");
    assert!(nodes.ok && nodes.detail.contains("pve2="), "{nodes:?}");
    assert_schema_clean(&sim);
}
