//! Boot to ready (create → start returns: the guest agent answered and the bootstrap file is
//! written; each VM is destroyed after the measurement) under TCG (`AGENTLAB_QEMU_TEST_ACCEL=kvm`
//! or `auto` for KVM), for `microvm` and `q35`, plus the
//! QEMU process's RSS per sandbox (printed). Boots the tiny test image by default; with
//! `AGENTLAB_QEMU_BENCH_IMAGE=<dir of agentlab image build>` the real image (q35 booting its
//! disk, microvm its kernel, cloud-init seed attached). Needs root and QEMU; prints a message
//! and measures nothing otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use agentlab_core::config::QemuMachine;
use agentlab_core::{BootstrapData, Hypervisor, SecretValue, Vmid};
use agentlab_qemu::{Boot, QemuHypervisor};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

use support::Lab;

fn lab(machine: QemuMachine) -> Lab {
    let tag = match machine {
        QemuMachine::Q35 => "bq",
        QemuMachine::Microvm => "bm",
    };
    let mut lab = Lab::new(tag, machine);
    if let Some(real) = std::env::var_os("AGENTLAB_QEMU_BENCH_IMAGE") {
        lab.opts.image = real.into();
        lab.opts.kernel_cmdline = None;
        lab.opts.cloud_init_seed = true;
        lab.opts.boot = match machine {
            QemuMachine::Q35 => Boot::Disk,
            QemuMachine::Microvm => Boot::Kernel,
        };
        lab.opts.boot_timeout = Duration::from_secs(600);
    }
    lab
}

/// Boots one VM; returns (time to ready, RSS in KiB) and destroys it.
async fn cycle(lab: &Lab, hv: &QemuHypervisor, n: u32) -> (Duration, u64) {
    let mut spec = lab.env().spec(Vmid::new(920_000 + n).unwrap());
    spec.resources.memory_mb = 1024;
    spec.resources.cores = 2;
    let boot = BootstrapData {
        channel_key: None,
        ssh_public_keys: Vec::new(),
        controller_url: "http://10.77.0.1:8844".to_owned(),
        token: SecretValue::new("bench-token-not-real"),
        vmid: spec.vmid,
    };
    let t0 = Instant::now();
    hv.create(&spec).await.unwrap();
    hv.configure(&spec).await.unwrap();
    hv.start(spec.vmid, Some(&boot)).await.unwrap();
    let ready = t0.elapsed();
    let rss = hv.qemu_rss_kib(spec.vmid).unwrap_or(0);
    hv.destroy(spec.vmid).await.unwrap();
    (ready, rss)
}

fn boot(c: &mut Criterion) {
    if !nix::unistd::geteuid().is_root() || !support::privileged() {
        eprintln!("SKIP: the QEMU boot bench needs root, QEMU and the tiny image's tools");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("qemu");
    // One boot per sample: ten boots (criterion's minimum) plus one warm-up per machine.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(1));
    group.warm_up_time(Duration::from_millis(1));
    for machine in [QemuMachine::Q35, QemuMachine::Microvm] {
        let lab = lab(machine);
        let hv = lab.hv();
        let n = AtomicU32::new(0);
        let rss = Mutex::new(Vec::new());
        let accel = hv.accel().as_str();
        group.bench_function(format!("boot_to_ready/{machine}/{accel}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (lab, hv, rss) = (&lab, &hv, &rss);
                let base = (n.fetch_add(1, Ordering::Relaxed) + 1) * 1000;
                async move {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        let (ready, kib) = cycle(lab, hv, base + u32::try_from(i).unwrap()).await;
                        total += ready;
                        rss.lock().unwrap().push(kib);
                    }
                    total
                }
            });
        });
        let mut rss = rss.into_inner().unwrap();
        rss.sort_unstable();
        if let Some(median) = rss.get(rss.len() / 2) {
            eprintln!(
                "qemu_tcg/{machine}: QEMU RSS median {} MiB over {} VMs",
                median / 1024,
                rss.len()
            );
        }
    }
    group.finish();
}

criterion_group!(benches, boot);
criterion_main!(benches);
