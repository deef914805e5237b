use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use agentlab_core::fake::FakeHypervisor;
use agentlab_core::fake::hypervisor::{FakeOp, Fault, FaultKind};
use agentlab_core::hypervisor::{
    BootstrapData, GuestExecOutput, GuestExecRequest, ManagedVm, NodeHealth, NodeStatus,
    PowerState, ProcessUsage, VmHandle, VmSpec, VmUsage, VolumeId,
};
use agentlab_core::testkit::hypervisor::{ConformanceEnv, hypervisor_conformance};
use agentlab_core::{Hypervisor, HypervisorError, Vmid, WorkspaceId};

use super::MeteredHypervisor;
use crate::families::Metrics;
use crate::testutil::{text, value};

fn metered(fake: &Arc<FakeHypervisor>) -> (MeteredHypervisor, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let inner: Arc<dyn Hypervisor> = Arc::clone(fake) as Arc<dyn Hypervisor>;
    (MeteredHypervisor::new(inner, Arc::clone(&metrics)), metrics)
}

#[tokio::test]
async fn the_decorated_fake_passes_the_conformance_suite_and_every_call_is_timed() {
    let fake = Arc::new(FakeHypervisor::new());
    let (hv, metrics) = metered(&fake);
    hypervisor_conformance(&hv, &ConformanceEnv::fake()).await;
    let t = text(&metrics);
    for call in [
        "create",
        "configure",
        "start",
        "stop",
        "destroy",
        "status",
        "guest_address",
        "list_managed",
        "used_ids",
        "create_volume",
        "delete_volume",
        "attach_volume",
        "detach_volume",
    ] {
        let series = format!(
            "agentlab_backend_call_duration_seconds_count{{backend=\"fake\",call=\"{call}\"}}"
        );
        let n = value(&t, &series).unwrap_or(0.0);
        assert!(n >= 1.0, "{call} was called and timed: {series} = {n}\n{t}");
    }
    // The suite asks for a VM that does not exist and expects NotFound: counted as an error.
    assert!(
        t.contains("agentlab_backend_call_errors_total{backend=\"fake\",call=\"status\",kind=\"not_found\"}"),
        "{t}"
    );
}

#[tokio::test]
async fn errors_are_counted_by_call_and_kind_and_returned_unchanged() {
    let fake = Arc::new(FakeHypervisor::new());
    fake.fail_always(
        FakeOp::UsedIds,
        Fault::new(FaultKind::Unavailable, "down for maintenance"),
    );
    fake.fail_once(FakeOp::ListManaged, Fault::new(FaultKind::Timeout, "slow"));
    let (hv, metrics) = metered(&fake);
    for _ in 0..3 {
        let e = hv.used_ids().await.expect_err("fault");
        assert!(matches!(e, HypervisorError::Unavailable(_)), "{e:?}");
    }
    assert!(matches!(
        hv.list_managed().await,
        Err(HypervisorError::Timeout(_))
    ));
    assert!(hv.list_managed().await.is_ok());
    let t = text(&metrics);
    let errors = |call: &str, kind: &str| {
        value(
            &t,
            &format!(
                "agentlab_backend_call_errors_total{{backend=\"fake\",call=\"{call}\",kind=\"{kind}\"}}"
            ),
        )
    };
    assert_eq!(errors("used_ids", "unavailable"), Some(3.0), "{t}");
    assert_eq!(errors("list_managed", "timeout"), Some(1.0), "{t}");
    assert_eq!(
        value(
            &t,
            "agentlab_backend_call_duration_seconds_count{backend=\"fake\",call=\"list_managed\"}"
        ),
        Some(2.0),
        "failed and successful calls are both timed"
    );
}

#[tokio::test]
async fn latency_lands_in_the_histogram() {
    let fake = Arc::new(FakeHypervisor::new());
    fake.set_latency(FakeOp::UsedIds, Duration::from_millis(30));
    let (hv, metrics) = metered(&fake);
    hv.used_ids().await.expect("used_ids");
    let t = text(&metrics);
    let sum = value(
        &t,
        "agentlab_backend_call_duration_seconds_sum{backend=\"fake\",call=\"used_ids\"}",
    )
    .expect("sum");
    assert!((0.03..5.0).contains(&sum), "30 ms latency observed: {sum}");
}

#[tokio::test]
async fn guest_exec_is_offered_only_when_the_backend_offers_it() {
    let fake = Arc::new(FakeHypervisor::new());
    let (hv, metrics) = metered(&fake);
    assert!(hv.guest_exec().is_none());
    assert!(hv.node_health().is_none());
    // The fake always measures usage (`set_cpu_seconds`); the decorator passes it on.
    assert!(hv.process_usage().is_some());

    fake.enable_guest_exec(Arc::new(|_req: &GuestExecRequest| {
        Ok(GuestExecOutput {
            exit_code: 0,
            stdout: b"hi".to_vec(),
            ..GuestExecOutput::default()
        })
    }));
    let env = ConformanceEnv::fake();
    let vmid = Vmid::new(*env.vmid_range.start()).expect("vmid");
    hv.create(&env.spec(vmid)).await.expect("create");
    hv.start(vmid, None).await.expect("start");
    let req = GuestExecRequest {
        argv: vec!["echo".to_owned(), "hi".to_owned()],
        input: None,
        timeout: Duration::from_secs(5),
        max_output: 1024,
    };
    let out = hv
        .guest_exec()
        .expect("offered now")
        .exec(vmid, &req)
        .await
        .expect("exec");
    assert_eq!(out.stdout, b"hi");
    assert_eq!(
        fake.guest_exec_calls().len(),
        1,
        "the call reached the backend"
    );
    let t = text(&metrics);
    assert_eq!(
        value(
            &t,
            "agentlab_backend_call_duration_seconds_count{backend=\"fake\",call=\"guest_exec\"}"
        ),
        Some(1.0),
        "{t}"
    );
}

/// A backend offering node health and process usage (delegating the verbs to the fake).
#[derive(Debug)]
struct Abilities(FakeHypervisor);

#[async_trait]
impl Hypervisor for Abilities {
    fn name(&self) -> &'static str {
        "abilities"
    }
    async fn create(&self, spec: &VmSpec) -> Result<VmHandle, HypervisorError> {
        self.0.create(spec).await
    }
    async fn configure(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        self.0.configure(spec).await
    }
    async fn start(&self, v: Vmid, b: Option<&BootstrapData>) -> Result<(), HypervisorError> {
        self.0.start(v, b).await
    }
    async fn stop(&self, v: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        self.0.stop(v, grace).await
    }
    async fn destroy(&self, v: Vmid) -> Result<(), HypervisorError> {
        self.0.destroy(v).await
    }
    async fn status(&self, v: Vmid) -> Result<PowerState, HypervisorError> {
        self.0.status(v).await
    }
    async fn guest_address(&self, v: Vmid) -> Result<Option<IpAddr>, HypervisorError> {
        self.0.guest_address(v).await
    }
    async fn list_managed(&self) -> Result<Vec<ManagedVm>, HypervisorError> {
        self.0.list_managed().await
    }
    async fn used_ids(&self) -> Result<Vec<Vmid>, HypervisorError> {
        self.0.used_ids().await
    }
    async fn create_volume(&self, ws: &WorkspaceId, gb: u32) -> Result<VolumeId, HypervisorError> {
        self.0.create_volume(ws, gb).await
    }
    async fn delete_volume(&self, vol: &VolumeId) -> Result<(), HypervisorError> {
        self.0.delete_volume(vol).await
    }
    async fn attach_volume(&self, v: Vmid, vol: &VolumeId) -> Result<(), HypervisorError> {
        self.0.attach_volume(v, vol).await
    }
    async fn detach_volume(&self, v: Vmid, vol: &VolumeId) -> Result<(), HypervisorError> {
        self.0.detach_volume(v, vol).await
    }
    fn node_health(&self) -> Option<&dyn NodeHealth> {
        Some(self)
    }
    fn process_usage(&self) -> Option<&dyn ProcessUsage> {
        Some(self)
    }
}

#[async_trait]
impl NodeHealth for Abilities {
    async fn node_status(&self) -> Result<Vec<NodeStatus>, HypervisorError> {
        Ok(vec![NodeStatus {
            name: "n1".to_owned(),
            online: false,
            mem_total: 0,
            mem_free: 0,
            clone_tasks: 0,
            clone_limit: 4,
        }])
    }
}

#[async_trait]
impl ProcessUsage for Abilities {
    async fn usage(&self, _vmid: Vmid) -> Result<Option<VmUsage>, HypervisorError> {
        Err(HypervisorError::NotFound("vm 1".to_owned()))
    }
}

#[tokio::test]
async fn optional_abilities_are_forwarded_and_metered() {
    let metrics = Arc::new(Metrics::new());
    let hv = MeteredHypervisor::new(
        Arc::new(Abilities(FakeHypervisor::new())),
        Arc::clone(&metrics),
    );
    assert_eq!(hv.name(), "abilities");
    let nodes = hv
        .node_health()
        .expect("forwarded")
        .node_status()
        .await
        .expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert!(!nodes[0].online, "the inner answer is returned unchanged");
    let vmid = Vmid::new(9100).expect("vmid");
    let e = hv
        .process_usage()
        .expect("forwarded")
        .usage(vmid)
        .await
        .expect_err("inner error");
    assert!(matches!(e, HypervisorError::NotFound(_)));
    let t = text(&metrics);
    assert_eq!(
        value(
            &t,
            "agentlab_backend_call_duration_seconds_count{backend=\"abilities\",call=\"node_status\"}"
        ),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        value(
            &t,
            "agentlab_backend_call_errors_total{backend=\"abilities\",call=\"process_usage\",kind=\"not_found\"}"
        ),
        Some(1.0),
        "{t}"
    );
}
