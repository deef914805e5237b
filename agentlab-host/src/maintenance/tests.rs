use std::sync::Arc;

use agentlab_core::engine::{Lab, LabDeps, LabSettings};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::profile::Profiles;
use agentlab_core::{EventKind, EventQuery};

use super::*;

fn lab() -> Arc<Lab> {
    let deps = LabDeps {
        hypervisor: Arc::new(FakeHypervisor::new()),
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store: Arc::new(MemoryStore::new()),
        clock: Arc::new(ManualClock::at_epoch()),
    };
    Lab::new(deps, LabSettings::default(), Profiles::default())
}

async fn disk_events(lab: &Lab) -> Vec<serde_json::Value> {
    let q = EventQuery {
        kinds: vec![EventKind::DiskUsage],
        ..EventQuery::default()
    };
    let events = lab.events(&q).await.unwrap();
    events.into_iter().map(|e| e.payload).collect()
}

#[tokio::test]
async fn a_crossing_is_reported_once_and_shared_filesystems_once() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let missing = dir.path().join("not-yet");
    let paths = vec![dir.path().to_path_buf(), sub, missing];
    let mut watch = DiskWatch::default();
    // A threshold of 1 % is crossed by any real filesystem; the same filesystem is one entry
    // and a missing directory none.
    let first = check_disks(&lab, &paths, 1, &mut watch).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].above);
    assert_eq!(first[0].path, dir.path().display().to_string());
    let again = check_disks(&lab, &paths, 1, &mut watch).await;
    assert_eq!(again.len(), 1);
    let events = disk_events(&lab).await;
    assert_eq!(events.len(), 1, "one event per crossing: {events:?}");
    assert_eq!(events[0]["above"], true);
    assert_eq!(events[0]["threshold_percent"], 1);
    // 100 % is only reached by a full filesystem: back below, one more event.
    let below = check_disks(&lab, &paths, 100, &mut watch).await;
    if !below[0].above {
        let events = disk_events(&lab).await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[1]["above"], false);
    }
}

#[test]
fn watched_paths_follow_the_backend() {
    let mut cfg = Config {
        backend: BackendKind::Local,
        ..Config::default()
    };
    let paths = watched_paths(&cfg);
    assert!(paths.contains(&cfg.data_dir));
    assert!(paths.contains(&cfg.artifact_dir()));
    assert!(paths.contains(&cfg.data_dir.join("local/volumes")));
    cfg.backend = BackendKind::Pve;
    assert!(!watched_paths(&cfg).iter().any(|p| p.ends_with("volumes")));
}
