//! `doctor` against the simulator, and the snippet bootstrap mode.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;

use agentlab_core::hypervisor::{BootstrapData, Hypervisor};
use agentlab_core::secrets::SecretValue;
use agentlab_pve::sim::{BootEvent, SeedVm};
use agentlab_pve::{BootstrapDelivery, ProxmoxHypervisor, doctor};
use common::{assert_schema_clean, setup, spec};

fn by_name(results: &[agentlab_pve::CheckResult]) -> BTreeMap<String, agentlab_pve::CheckResult> {
    results
        .iter()
        .map(|r| (r.name.clone(), r.clone()))
        .collect()
}

#[tokio::test]
async fn doctor_passes_on_a_good_setup() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    // A template as `agentlab template install` leaves it: marked, on the profile's node.
    let spec = agentlab_pve::template::TemplateSpec {
        name: "tmpl-9000".into(),
        vmid: Some(common::TEMPLATE),
        disk: std::path::PathBuf::new(),
        manifest_sha256: "sha256:00".into(),
        disk_sha256: "sha256:00".into(),
        guest_protocol: agentlab_core::api::guest::GUEST_PROTOCOL_VERSION,
        import_storage: "local".into(),
        memory_mb: 512,
        cores: 1,
        replace: false,
    };
    sim.add_vm(&agentlab_pve::sim::SeedVm {
        description: Some(agentlab_pve::template::marker(&spec)),
        ..agentlab_pve::sim::SeedVm::template(common::TEMPLATE, "pve1")
    });
    let results = doctor(hv.options(), common::TEMPLATE).await;
    let failed: Vec<_> = results.iter().filter(|r| !r.ok).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let names = by_name(&results);
    for n in [
        "api",
        "version",
        "template",
        "template.agent",
        "template.cloudinit",
        "storage",
        "bridge",
        "privileges",
    ] {
        assert!(names.contains_key(n), "missing check {n}: {results:?}");
    }
    assert_schema_clean(&sim);
}

#[tokio::test]
async fn doctor_reports_each_problem_with_a_fix() {
    let Some((sim, _)) = setup(|c| {
        c.permissions.remove("/storage");
        c.bridges = vec!["vmbr0".into()];
    })
    .await
    else {
        return;
    };
    sim.add_vm(&SeedVm {
        agent: false,
        cloudinit: false,
        template: false,
        ..SeedVm::template(9300, "pve1")
    });
    let mut opts = common::options(&sim);
    opts.bootstrap = BootstrapDelivery::Snippet;
    opts.snippets_storage = Some("local-lvm".into());
    opts.snippets_dir = Some("/nonexistent/snippets".into());
    let names = by_name(&doctor(&opts, 9300).await);
    for n in [
        "template",
        "template.cloudinit",
        "bridge",
        "privileges",
        "snippets",
    ] {
        let r = &names[n];
        assert!(
            !r.ok && r.fix.is_some(),
            "{n} should fail with a fix: {r:?}"
        );
    }
    assert!(
        names["privileges"]
            .detail
            .contains("/storage/local-lvm Datastore.Allocate"),
        "{:?}",
        names["privileges"]
    );
    assert!(
        names["template.agent"].ok,
        "agent not needed in snippet mode"
    );
    assert!(names["api"].ok && names["storage"].ok);

    let mut bad = common::options(&sim);
    bad.token_secret = SecretValue::new("wrong");
    let results = doctor(&bad, 9000).await;
    assert_eq!(results.len(), 1);
    assert!(
        !results[0].ok && results[0].detail.contains("401"),
        "{results:?}"
    );
    assert!(!results[0].detail.contains("wrong"), "secret not echoed");
}

#[tokio::test]
async fn snippet_bootstrap_writes_a_private_file_and_cleans_up() {
    let Some((sim, _)) = setup(|_| {}).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(&sim);
    opts.bootstrap = BootstrapDelivery::Snippet;
    opts.snippets_storage = Some("local".into());
    opts.snippets_dir = Some(dir.path().to_owned());
    let hv = ProxmoxHypervisor::new(opts).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = std::sync::Arc::clone(&seen);
    sim.set_boot_hook(std::sync::Arc::new(move |e: &BootEvent| {
        if let BootEvent::Started { config, .. } = e {
            seen2.lock().unwrap().push(config.get("cicustom").cloned());
        }
    }));
    let s = spec(9400);
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    let boot = BootstrapData {
        channel_key: None,
        ssh_public_keys: Vec::new(),
        controller_url: "http://10.77.0.1:8844".into(),
        token: SecretValue::new("snip-token"),
        vmid: s.vmid,
    };
    hv.start(s.vmid, Some(&boot)).await.unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("agentlab-9400-") && name.ends_with(".yaml"),
        "{name}"
    );
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.starts_with("#cloud-config")
            && text.contains("/run/agentlab/bootstrap.json")
            && text.contains("snip-token")
    );
    let cicustom = seen.lock().unwrap()[0].clone().unwrap();
    assert_eq!(cicustom, format!("user=local:snippets/{name}"));
    assert!(
        sim.guest_file(9400, "/run/agentlab/bootstrap.json")
            .is_none(),
        "no agent write in snippet mode"
    );
    hv.destroy(s.vmid).await.unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "snippet removed on destroy"
    );
    assert_schema_clean(&sim);
}
