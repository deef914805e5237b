//! From `agentlab template install` to a finished job, with `backend: pve` against the PVE
//! simulator: two nodes with local storage, so the install puts one template per node
//! (distinct vmids); the profile names the first node's template once and placement clones
//! the other node's own copy there (no cross-node `target`). The job runs the real
//! `agent-runner`, whose bootstrap arrives through the simulated guest agent.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;

use agentlab_image::manifest::{RunnerInfo, file_sha256};
use agentlab_image::{ImageSpec, Manifest};
use agentlab_pve::sim::{SimConfig, Simulator};
use harness::{Daemon, bin};

/// An image directory as `agentlab image build` leaves it (the simulator does not boot the
/// disk, so its bytes are arbitrary; the manifest is real).
fn image_dir(dir: &std::path::Path) {
    std::fs::write(dir.join("disk.qcow2"), vec![5u8; 256 * 1024]).unwrap();
    let runner = bin("agent-runner");
    let manifest = Manifest {
        format: 1,
        agentlab_version: env!("CARGO_PKG_VERSION").into(),
        spec_hash: "sha256:test".into(),
        spec: ImageSpec::default(),
        source_date_epoch: 0,
        kernel: "vmlinuz".into(),
        cmdline: "console=ttyS0".into(),
        packages: Vec::new(),
        npm: Vec::new(),
        runner: RunnerInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            sha256: file_sha256(&runner).unwrap(),
            guest_protocol: agentlab_core::api::guest::GUEST_PROTOCOL_VERSION,
        },
        outputs: BTreeMap::from([(
            "disk.qcow2".to_owned(),
            file_sha256(&dir.join("disk.qcow2")).unwrap(),
        )]),
    };
    manifest.write(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_runs_from_a_template_installed_per_node() {
    let Some(schema) = harness::pve_schema_or_skip() else {
        return;
    };
    let mut cfg = SimConfig::new(schema);
    for s in &mut cfg.storages {
        if s.id == "local" {
            s.content.push("import".into());
        }
    }
    let sim = Simulator::start(cfg, "127.0.0.1:0").await.unwrap();
    let vms = tempfile::tempdir().unwrap();
    harness::boot_runs_the_runner(&sim, vms.path());
    let profiles = "name: tmpl\ntemplate_vmid: 8000\nresources:\n  cores: 1\n  memory_mb: 512\n\
        behavior:\n  ttl_minutes_default: 10\nrepo:\n  clone_path: {dir}/checkout\n\
        agent:\n  command: \"echo ran-from-installed-template\"\n";
    let pve = harness::sim_pve_section(&sim, "auto", "local-lvm");
    let sim = Arc::new(sim);
    let sim2 = Arc::clone(&sim);
    tokio::task::spawn_blocking(move || {
        let sim = sim2;
        let d = Daemon::start_backend(Some(profiles), "pve", &pve);
        let image = d.dir.path().join("image");
        std::fs::create_dir_all(&image).unwrap();
        image_dir(&image);

        // Install on every node: local storage → one template per node.
        let config = d.config.display().to_string();
        let image_arg = image.display().to_string();
        let installed = d.json(&[
            "template", "install", "--config", &config, "--image", &image_arg, "--vmid", "8000",
        ]);
        let installed = installed.as_array().unwrap().clone();
        assert_eq!(installed.len(), 2, "{installed:?}");
        assert_eq!(installed[0]["node"], "pve1");
        assert_eq!(installed[0]["vmid"], 8000);
        assert_eq!(installed[1]["node"], "pve2");
        let copy = installed[1]["vmid"].as_u64().unwrap();
        assert_ne!(copy, 8000);

        let url = harness::empty_repo(&d);
        let out = d.cli(&[
            "job",
            "run",
            "--repo",
            &url,
            "--task",
            "hello",
            "--profile",
            "tmpl",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout:\n{stdout}\nstderr:\n{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            d.log()
        );
        assert!(stdout.contains("ran-from-installed-template"), "{stdout}");
        let jobs = d.json(&["job", "list"]);
        let job = &jobs.as_array().unwrap()[0];
        assert_eq!(job["state"], "COMPLETED", "{job}");
        let vmid = job["sandbox"].as_u64().unwrap();
        let sb = d.wait_sandbox(vmid, |v| v["state"] == "DESTROYED");
        // pve2 has the most free memory and its own copy: cloned there, from the copy.
        assert_eq!(sb["node"], "pve2", "{sb}");
        let clones: Vec<_> = sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/clone"))
            .collect();
        assert_eq!(clones.len(), 1, "{clones:?}");
        assert_eq!(clones[0].path, format!("/nodes/pve2/qemu/{copy}/clone"));
        assert!(
            !clones[0].params.iter().any(|(k, _)| k == "target"),
            "a local clone, no cross-node target: {:?}",
            clones[0].params
        );
        let mut left = sim.vm_ids();
        left.sort_unstable();
        assert_eq!(left, vec![copy as u32, 8000], "only the two templates stay");
    })
    .await
    .unwrap();
    sim.assert_all_valid();
}
