//! Clone contention, measured: 20 sandboxes created (clone + configure) at once from one
//! template on the PVE simulator, with PVE's config/storage lock timeouts injected, then
//! destroyed. Reports wall time per batch; the backend's counters (lock retries, clone permit
//! waits, task polls) are printed once per run so the retry/back-off behaviour is visible.
//!
//! Run: `cargo bench -p agentlab-pve --features sim --bench contention` (uses the schema
//! subset in `agentlab-pve/schema/`; prints a skip message without it).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use agentlab_core::{Hypervisor, NetAttachment, Resources, SecretValue, VmSpec, Vmid};
use agentlab_pve::sim::{FaultKind, FaultRule, SeedVm, SimConfig, Simulator, default_schema_path};
use agentlab_pve::{PollOptions, ProxmoxHypervisor, PveOptions};
use criterion::{Criterion, criterion_group, criterion_main};

const BATCH: u32 = 20;
const TEMPLATE: u32 = 9000;

fn spec(vmid: u32) -> VmSpec {
    let host = vmid % 60_000;
    VmSpec {
        vmid: Vmid::new(vmid).expect("vmid in range"),
        name: format!("agentlab-{vmid}"),
        template_vmid: TEMPLATE,
        node: None,
        full_clone: false,
        resources: Resources {
            cores: 1,
            memory_mb: 1024,
            cpulimit: None,
            balloon_mb: None,
        },
        root_size_gb: None,
        net: NetAttachment {
            bridge: "vmbr1".into(),
            model: "virtio".into(),
            mac: format!("02:a9:00:00:{:02x}:{:02x}", host / 256 % 256, host % 256),
            ip: IpAddr::V4(Ipv4Addr::new(
                10,
                77,
                (host / 250 % 250) as u8,
                (host % 250 + 2) as u8,
            )),
            prefix_len: 16,
            gateway: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
            firewall: true,
        },
        profile: "bench".into(),
        ssh_public_keys: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let schema = default_schema_path();
    if !schema.exists() {
        eprintln!("SKIP: PVE schema not found at {}", schema.display());
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (sim, hv) = rt.block_on(async {
        let mut cfg = SimConfig::new(schema);
        cfg.lock_timeout = Duration::from_millis(15);
        cfg.clone_duration = Duration::from_millis(10);
        let sim = Simulator::start(cfg, "127.0.0.1:0").await.expect("simulator");
        sim.add_vm(&SeedVm::template(TEMPLATE, "pve1"));
        let lock = "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout";
        sim.add_fault(FaultRule::always("POST", "/clone", FaultKind::TaskFailure(lock.into())).with_probability(0.2));
        let mut o = PveOptions::new(
            sim.url(),
            sim.config().token_id.clone(),
            SecretValue::new(sim.config().token_secret.clone()),
            "local-lvm",
        );
        o.node = "pve1".into();
        o.bridge = Some("vmbr1".into());
        o.poll = PollOptions {
            task_interval_ms: 2,
            task_max_interval_ms: 10,
            task_fine_interval_ms: 2,
            task_timeout_ms: 30_000,
            agent_interval_ms: 5,
            agent_timeout_ms: 30_000,
            lock_retries: 20,
            lock_backoff_ms: 5,
            request_timeout_ms: 10_000,
            max_inflight: 6,
            ..PollOptions::default()
        };
        let hv = Arc::new(ProxmoxHypervisor::new(o).expect("backend"));
        (sim, hv)
    });
    let next = AtomicU32::new(10_000);
    let mut group = c.benchmark_group("pve_contention");
    group.sample_size(10);
    group.bench_function("create_20_concurrently_then_destroy", |b| {
        b.to_async(&rt).iter(|| async {
            let first = next.fetch_add(BATCH, Ordering::Relaxed);
            let mut handles = Vec::new();
            for i in 0..BATCH {
                let hv = Arc::clone(&hv);
                handles.push(tokio::spawn(async move {
                    let s = spec(first + i);
                    hv.create(&s).await.expect("create");
                    hv.configure(&s).await.expect("configure");
                    s.vmid
                }));
            }
            for h in handles {
                let vmid = h.await.expect("task");
                hv.destroy(black_box(vmid)).await.expect("destroy");
            }
        });
    });
    group.finish();
    eprintln!("backend counters over the run: {:?}", hv.counters());
    sim.assert_all_valid();
}

criterion_group!(benches, bench);
criterion_main!(benches);
