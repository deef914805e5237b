//! The backend part of `/v1/status`, probed at most once per [`HEALTH_TTL`]: on Proxmox the
//! probe (`Hypervisor::list_managed`, and `NodeHealth::node_status` where the backend has
//! it) costs API round trips, so status calls inside the window share the last answer, and
//! calls that arrive while a probe runs wait for that probe instead of starting their own
//! (single flight). A failed probe is cached like a healthy one: it is reported as failed
//! until the window ends, and the next call after that probes again. Time comes from the
//! engine's clock (`LabDeps::clock`); a clock set back also ends the window. Any sandbox
//! write the lab made since the probe started ends it too (`Lab::sandbox_writes`): a status
//! read right after a create or destroy shows the backend's figures after it (free memory,
//! clone tasks), not the ones from before.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;

use agentlab_core::Timestamp;
use agentlab_core::engine::{Lab, chain};
use agentlab_core::hypervisor::NodeStatus;

/// How long one probe answers status calls.
pub const HEALTH_TTL: Duration = Duration::from_secs(2);

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// `Ok` when `list_managed` answered, else the error chain.
    pub backend: Result<(), String>,
    /// Per-node health: `None` for single-host backends, else the answer or the error chain.
    pub nodes: Option<Result<Vec<NodeStatus>, String>>,
}

/// One probe (running or done) and when it finished.
/// When a probe started, the lab's sandbox-write count then, and what it found.
type Slot = Arc<OnceCell<(Timestamp, u64, Health)>>;

/// The cached probe, shared by every status call.
#[derive(Debug)]
pub struct HealthCache {
    ttl: chrono::Duration,
    slot: Mutex<Slot>,
}

impl HealthCache {
    /// A cache whose answers are reused for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
            slot: Mutex::new(Arc::default()),
        }
    }

    /// The last probe if it finished less than the TTL ago, else the running probe, else a
    /// new one.
    pub async fn get(&self, lab: &Lab) -> Health {
        let clock = &lab.deps().clock;
        let slot = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            // A clock that went back (wall time is set) also ends the window.
            let writes = lab.sandbox_writes();
            let stale = slot.get().is_some_and(|(at, seen, _)| {
                let age = clock.now().signed_duration_since(*at);
                age >= self.ttl || age < chrono::Duration::zero() || *seen != writes
            });
            if stale {
                *slot = Arc::default();
            }
            Arc::clone(&slot)
        };
        let (_, _, health) = slot
            .get_or_init(|| async {
                let (at, writes) = (clock.now(), lab.sandbox_writes());
                (at, writes, probe(lab).await)
            })
            .await;
        health.clone()
    }
}

/// Asks the backend: `list_managed`, then per-node health where the backend has it.
async fn probe(lab: &Lab) -> Health {
    let hv = &lab.deps().hypervisor;
    let backend = hv.list_managed().await.map(|_| ()).map_err(|e| chain(&e));
    let nodes = match hv.node_health() {
        None => None,
        Some(h) => Some(h.node_status().await.map_err(|e| chain(&e))),
    };
    tracing::debug!(healthy = backend.is_ok(), "backend health probed");
    Health { backend, nodes }
}

#[cfg(test)]
mod tests {
    use super::*;

    use agentlab_core::Clock;
    use agentlab_core::engine::{LabDeps, LabSettings};
    use agentlab_core::fake::hypervisor::{FakeOp, Fault, FaultKind};
    use agentlab_core::fake::{
        FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
    };
    use agentlab_core::profile::Profiles;

    fn lab(hv: &Arc<FakeHypervisor>, clock: &Arc<ManualClock>) -> Arc<Lab> {
        let deps = LabDeps {
            hypervisor: hv.clone(),
            firewall: Arc::new(FakeFirewall::new()),
            secrets: Arc::new(MemorySecretStore::new()),
            store: Arc::new(MemoryStore::new()),
            clock: clock.clone(),
        };
        Lab::new(deps, LabSettings::default(), Profiles::default())
    }

    fn probes(hv: &FakeHypervisor) -> usize {
        hv.calls()
            .iter()
            .filter(|c| c.op == FakeOp::ListManaged)
            .count()
    }

    /// Twenty status calls at once and more inside the window cause one `list_managed`; the
    /// first call after the window (or after the clock was set back) probes again.
    #[tokio::test]
    async fn calls_inside_the_window_share_one_probe() {
        let hv = Arc::new(FakeHypervisor::new());
        // Slow enough that the concurrent calls overlap the running probe.
        hv.set_latency(FakeOp::ListManaged, Duration::from_millis(50));
        let clock = Arc::new(ManualClock::at_epoch());
        let lab = lab(&hv, &clock);
        hv.clear_calls();
        let cache = Arc::new(HealthCache::new(HEALTH_TTL));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (cache, lab) = (Arc::clone(&cache), Arc::clone(&lab));
            set.spawn(async move { cache.get(&lab).await });
        }
        while let Some(h) = set.join_next().await {
            assert_eq!(h.expect("join").backend, Ok(()));
        }
        assert_eq!(probes(&hv), 1, "concurrent calls share one probe");
        clock.advance(Duration::from_millis(1900));
        for _ in 0..5 {
            assert_eq!(cache.get(&lab).await.backend, Ok(()));
        }
        assert_eq!(probes(&hv), 1, "calls inside the window reuse it");
        clock.advance(Duration::from_millis(100));
        assert_eq!(cache.get(&lab).await.backend, Ok(()));
        assert_eq!(
            probes(&hv),
            2,
            "the first call after the window probes again"
        );
        clock.set(clock.now() - chrono::Duration::seconds(3600));
        assert_eq!(cache.get(&lab).await.backend, Ok(()));
        assert_eq!(probes(&hv), 3, "a clock set back ends the window too");
    }

    /// A failing probe is reported as failing, for the window only; then the next probe sees
    /// the backend healthy again.
    #[tokio::test]
    async fn a_failed_probe_is_reported_and_not_kept_past_the_window() {
        let hv = Arc::new(FakeHypervisor::new());
        let clock = Arc::new(ManualClock::at_epoch());
        let lab = lab(&hv, &clock);
        let cache = HealthCache::new(HEALTH_TTL);
        hv.fail_always(
            FakeOp::ListManaged,
            Fault::new(FaultKind::Unavailable, "backend down"),
        );
        let h = cache.get(&lab).await;
        let err = h.backend.expect_err("the failure is reported");
        assert!(err.contains("backend down"), "{err}");
        assert!(cache.get(&lab).await.backend.is_err(), "within the window");
        hv.clear_faults();
        clock.advance(HEALTH_TTL);
        assert_eq!(cache.get(&lab).await.backend, Ok(()), "probed again");
        // And a backend that fails after a healthy probe is reported once the window ends.
        hv.fail_always(
            FakeOp::ListManaged,
            Fault::new(FaultKind::Unavailable, "down again"),
        );
        clock.advance(HEALTH_TTL);
        assert!(cache.get(&lab).await.backend.is_err());
    }

    /// A sandbox write ends the window early: status right after a create shows the
    /// backend's figures after it.
    #[tokio::test]
    async fn a_sandbox_write_ends_the_window() {
        let hv = Arc::new(FakeHypervisor::new());
        let clock = Arc::new(ManualClock::at_epoch());
        let lab = lab(&hv, &clock);
        hv.clear_calls();
        let cache = HealthCache::new(HEALTH_TTL);
        cache.get(&lab).await;
        cache.get(&lab).await;
        assert_eq!(probes(&hv), 1);
        let vmid = agentlab_core::Vmid::new(4242).expect("vmid");
        let sandbox = agentlab_core::testkit::store::sample_sandbox(vmid, clock.now());
        lab.deps()
            .store
            .insert_sandbox(&sandbox)
            .await
            .expect("insert");
        cache.get(&lab).await;
        assert_eq!(probes(&hv), 2, "the write made the cached answer stale");
        cache.get(&lab).await;
        assert_eq!(probes(&hv), 2, "and the new answer is shared again");
    }
}
