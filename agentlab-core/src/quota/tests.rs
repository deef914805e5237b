use std::path::Path;

use super::*;
use crate::testkit::store::{sample_sandbox, t0, vmid};

fn sandbox(n: u32, profile: &str, state: SandboxState, vm: bool) -> Sandbox {
    let mut sb = sample_sandbox(vmid(n), t0());
    sb.profile = profile.to_owned();
    sb.state = state;
    sb.vm_created = vm;
    sb
}

#[test]
fn destroyed_and_vmless_failed_sandboxes_hold_no_slot() {
    assert!(holds_slot(&sandbox(
        100,
        "a",
        SandboxState::Requested,
        false
    )));
    assert!(holds_slot(&sandbox(
        100,
        "a",
        SandboxState::Destroying,
        true
    )));
    assert!(holds_slot(&sandbox(100, "a", SandboxState::Failed, true)));
    assert!(!holds_slot(&sandbox(100, "a", SandboxState::Failed, false)));
    assert!(!holds_slot(&sandbox(
        100,
        "a",
        SandboxState::Timeout,
        false
    )));
    assert!(!holds_slot(&sandbox(
        100,
        "a",
        SandboxState::Destroyed,
        true
    )));
}

#[test]
fn total_and_per_profile_limits_name_themselves() {
    let q = QuotasConfig {
        max_sandboxes: Some(3),
        max_sandboxes_per_profile: [("small".to_owned(), 1)].into(),
        ..QuotasConfig::default()
    };
    let mut live = vec![
        sandbox(101, "big", SandboxState::Ready, true),
        sandbox(102, "big", SandboxState::Destroyed, false),
    ];
    assert_eq!(check_sandbox(&q, &live, "small"), Ok(()));
    live.push(sandbox(103, "small", SandboxState::Running, true));
    let e = check_sandbox(&q, &live, "small").unwrap_err();
    assert_eq!(
        (e.limit, e.value, e.used, e.profile.as_deref()),
        ("max_sandboxes_per_profile", 1, 1, Some("small"))
    );
    assert_eq!(
        e.to_string(),
        "Quota exceeded: quotas.max_sandboxes_per_profile.small is 1, 1 in use, 1 requested"
    );
    assert_eq!(
        check_sandbox(&q, &live, "big"),
        Ok(()),
        "other profiles fit"
    );
    live.push(sandbox(104, "big", SandboxState::Booting, true));
    let e = check_sandbox(&q, &live, "big").unwrap_err();
    assert_eq!((e.limit, e.value, e.used), ("max_sandboxes", 3, 3));
    assert_eq!(
        check_sandbox(&QuotasConfig::default(), &live, "big"),
        Ok(()),
        "no limits by default"
    );
}

#[test]
fn artifact_allowance_takes_the_tightest_limit_and_names_quotas() {
    let q = QuotasConfig {
        max_artifact_bytes_per_job: Some(1000),
        max_artifact_bytes_total: Some(5000),
        ..QuotasConfig::default()
    };
    let usage = |job_bytes, total_bytes| ArtifactUsage {
        job_bytes,
        total_bytes,
    };
    // The size limit binds: no quota is named.
    let a = artifact_allowance(&q, 100, usage(0, 0));
    assert_eq!((a.bytes, a.quota.clone()), (100, None));
    assert_eq!(a.refusal(Some(200)), None);
    // The per-job quota binds.
    let a = artifact_allowance(&q, 10_000, usage(700, 700));
    assert_eq!(a.bytes, 300);
    assert_eq!(a.refusal(Some(300)), None, "exactly the rest fits");
    let r = a.refusal(Some(301)).expect("over the per-job quota");
    assert_eq!(
        (r.limit, r.value, r.used, r.requested),
        ("max_artifact_bytes_per_job", 1000, 700, Some(301))
    );
    // The total binds.
    let a = artifact_allowance(&q, 10_000, usage(0, 4900));
    assert_eq!(a.bytes, 100);
    let r = a.refusal(None).expect("unknown size over the total");
    assert_eq!((r.limit, r.used), ("max_artifact_bytes_total", 4900));
    assert!(
        r.to_string()
            .contains("quotas.max_artifact_bytes_total is 5000 bytes")
    );
    // Full: nothing more fits.
    assert_eq!(artifact_allowance(&q, 10_000, usage(0, 6000)).bytes, 0);
    // No quotas: only the size limit.
    let a = artifact_allowance(&QuotasConfig::default(), 77, usage(1 << 40, 1 << 50));
    assert_eq!((a.bytes, a.quota), (77, None));
}

#[test]
fn disk_watch_reports_each_crossing_once() {
    let mut w = DiskWatch::default();
    let p = Path::new("/var/lib/agentlab");
    assert_eq!(w.observe(p, 50.0, 90), None);
    assert_eq!(w.observe(p, 91.0, 90), Some(DiskCrossing::Above));
    assert_eq!(w.observe(p, 95.0, 90), None, "once per crossing");
    assert_eq!(w.above(), vec![p.to_path_buf()]);
    assert_eq!(w.observe(p, 80.0, 90), Some(DiskCrossing::Below));
    assert_eq!(w.observe(p, 80.0, 90), None);
    assert!(w.above().is_empty());
    let q = Path::new("/srv");
    assert_eq!(
        w.observe(q, 99.0, 90),
        Some(DiskCrossing::Above),
        "first look above"
    );
}
