//! create → start → guest running → destroy, for one local sandbox and for 10 in parallel.
//! Needs root, bwrap and ip (the bridge lives in a throwaway router namespace); prints a
//! message and measures nothing otherwise.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use agentlab_core::{Hypervisor, PowerState};
use agentlab_local::LocalHypervisor;
use criterion::{Criterion, criterion_group, criterion_main};

use support::{Lab, SLEEPER};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    })
}

/// One full lifecycle of sandbox `n` (guest 10.77.1.`n`).
async fn cycle(lab: &Lab, hv: &LocalHypervisor, n: u32) {
    let mut spec = lab.spec(910_000 + n, 10);
    spec.net.ip = [10, 77, 1, u8::try_from(n).unwrap()].into();
    hv.create(&spec).await.unwrap();
    hv.start(spec.vmid, None).await.unwrap();
    assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Running);
    assert_eq!(
        hv.guest_address(spec.vmid).await.unwrap(),
        Some(spec.net.ip)
    );
    hv.destroy(spec.vmid).await.unwrap();
}

fn lifecycle(c: &mut Criterion) {
    if !is_root() || !std::path::Path::new("/usr/bin/bwrap").exists() {
        eprintln!("SKIP: the local lifecycle bench needs root and /usr/bin/bwrap");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lab = Arc::new(Lab::new("b", SLEEPER));
    let hv = lab.hv();
    let mut group = c.benchmark_group("local_lifecycle");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("one_sandbox", |b| {
        b.to_async(&rt).iter(|| cycle(&lab, &hv, 1));
    });
    group.bench_function("ten_in_parallel", |b| {
        b.to_async(&rt).iter(|| async {
            let mut set = tokio::task::JoinSet::new();
            for n in 1..=10 {
                let (lab, hv) = (Arc::clone(&lab), hv.clone());
                set.spawn(async move { cycle(&lab, &hv, n).await });
            }
            while let Some(done) = set.join_next().await {
                done.unwrap();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);
