//! Conformance suites for [`Hypervisor`] and [`Firewall`] implementations.
//!
//! [`hypervisor_conformance`] walks one VM through its whole life (create, collide, configure,
//! volumes, start, guest address, stop, destroy) on a real or fake backend, using only ids in
//! [`ConformanceEnv::vmid_range`] that `used_ids` reports free, and panics with a message
//! naming the backend, the step and the error chain on the first violation. It is meant for
//! real systems too, so it polls the guest address with real sleeps; a panic midway may leave
//! the test VM and volume behind (names start with `agentlab-conformance`).
//!
//! [`firewall_conformance`] checks the [`Firewall`] rules on VM ids 990001 and 990002 and
//! leaves no sandbox entries behind.

use std::error::Error;
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::firewall::{Egress, Firewall, FirewallError, SandboxNet};
use crate::hypervisor::{
    BootstrapData, Hypervisor, HypervisorError, NetAttachment, PowerState, Resources, VmSpec,
};
use crate::ids::{Vmid, WorkspaceId};
use crate::secrets::SecretValue;

/// What backends differ on; [`ConformanceEnv::fake`] suits [`crate::fake::FakeHypervisor`].
#[derive(Debug, Clone)]
pub struct ConformanceEnv {
    /// Template VM to clone.
    pub template_vmid: u32,
    /// Ids the suite may use (it takes the first two that `used_ids` does not report).
    pub vmid_range: RangeInclusive<u32>,
    /// Node to place the VM on, if the backend needs one.
    pub node: Option<String>,
    /// Bridge for the VM's NIC.
    pub bridge: String,
    /// Address the guest gets (and `guest_address` must report).
    pub guest_ip: IpAddr,
    /// Prefix length of the agent subnet.
    pub prefix_len: u8,
    /// Gateway on the agent subnet.
    pub gateway: IpAddr,
    /// Whether `guest_address` must report `guest_ip` after the start.
    pub expect_guest_address: bool,
    /// How many times to poll `guest_address` before giving up.
    pub address_polls: u32,
    /// Sleep between two polls.
    pub poll_interval: Duration,
    /// Grace given to `stop`.
    pub stop_grace: Duration,
    /// Size of the test volume in GiB.
    pub volume_size_gb: u32,
}

impl ConformanceEnv {
    /// Settings for the fake: any template, ids 900000..=900099, `10.77.0.100/16`, answers
    /// within 20 polls of 1 ms.
    pub fn fake() -> Self {
        Self {
            template_vmid: 9000,
            vmid_range: 900_000..=900_099,
            node: None,
            bridge: "agentlab0".to_owned(),
            guest_ip: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100)),
            prefix_len: 16,
            gateway: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
            expect_guest_address: true,
            address_polls: 20,
            poll_interval: Duration::from_millis(1),
            stop_grace: Duration::from_secs(5),
            volume_size_gb: 1,
        }
    }

    /// A spec for `vmid` built from these settings (1 core, 512 MiB, linked clone).
    pub fn spec(&self, vmid: Vmid) -> VmSpec {
        VmSpec {
            vmid,
            name: format!("agentlab-conformance-{vmid}"),
            template_vmid: self.template_vmid,
            node: self.node.clone(),
            full_clone: false,
            resources: Resources {
                cores: 1,
                memory_mb: 512,
                cpulimit: None,
                balloon_mb: None,
            },
            root_size_gb: None,
            net: NetAttachment {
                bridge: self.bridge.clone(),
                model: "virtio".to_owned(),
                mac: format!(
                    "02:00:00:{:02x}:{:02x}:{:02x}",
                    vmid.get() >> 16 & 0xff,
                    vmid.get() >> 8 & 0xff,
                    vmid.get() & 0xff
                ),
                ip: self.guest_ip,
                prefix_len: self.prefix_len,
                gateway: self.gateway,
                firewall: true,
            },
            profile: "conformance".to_owned(),
            ssh_public_keys: Vec::new(),
        }
    }
}

/// The error and its whole source chain on one line.
fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Unwraps `result` or panics naming `backend` and `step`.
fn ok<T, E: Error>(backend: &str, step: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|err| panic!("[{backend}] {step} failed: {}", chain(&err)))
}

/// Panics unless `result` is an error accepted by `want`.
fn fails<T: Debug>(
    backend: &str,
    step: &str,
    expected: &str,
    result: Result<T, HypervisorError>,
    want: impl Fn(&HypervisorError) -> bool,
) {
    match result {
        Err(err) if want(&err) => {}
        Err(err) => panic!(
            "[{backend}] {step}: expected {expected}, got error {}",
            chain(&err)
        ),
        Ok(value) => panic!("[{backend}] {step}: expected {expected}, got Ok({value:?})"),
    }
}

fn not_found(err: &HypervisorError) -> bool {
    matches!(err, HypervisorError::NotFound(_))
}

fn conflict(err: &HypervisorError) -> bool {
    matches!(err, HypervisorError::Conflict(_))
}

/// Runs the hypervisor conformance suite; see the [module docs](self).
pub async fn hypervisor_conformance(h: &dyn Hypervisor, env: &ConformanceEnv) {
    let b = h.name();
    let used = ok(b, "used_ids", h.used_ids().await);
    let mut free = env
        .vmid_range
        .clone()
        .filter(|n| !used.iter().any(|u| u.get() == *n));
    let (Some(vmid), Some(ghost)) = (free.next(), free.next()) else {
        panic!("[{b}] fewer than two free ids in {:?}", env.vmid_range);
    };
    let vmid = Vmid::new(vmid).unwrap_or_else(|e| panic!("[{b}] bad vmid_range: {e}"));
    let ghost = Vmid::new(ghost).unwrap_or_else(|e| panic!("[{b}] bad vmid_range: {e}"));
    let spec = env.spec(vmid);

    fails(
        b,
        "status of a never-created VM",
        "NotFound",
        h.status(ghost).await,
        not_found,
    );
    fails(
        b,
        "destroy of a never-created VM",
        "NotFound",
        h.destroy(ghost).await,
        not_found,
    );

    let handle = ok(b, "create", h.create(&spec).await);
    assert_eq!(
        handle.vmid, vmid,
        "[{b}] create returned a handle for another VM"
    );
    let power = ok(b, "status after create", h.status(vmid).await);
    assert_eq!(
        power,
        PowerState::Stopped,
        "[{b}] a created VM must be stopped"
    );
    fails(
        b,
        "create of an existing id",
        "AlreadyExists",
        h.create(&spec).await,
        |e| matches!(e, HypervisorError::AlreadyExists(_)),
    );
    ok(b, "configure", h.configure(&spec).await);
    let power = ok(b, "status after configure", h.status(vmid).await);
    assert_eq!(
        power,
        PowerState::Stopped,
        "[{b}] configure must not start the VM"
    );

    let managed = ok(b, "list_managed", h.list_managed().await);
    assert!(
        managed.iter().any(|m| m.vmid == vmid),
        "[{b}] list_managed misses {vmid}"
    );
    let used = ok(b, "used_ids", h.used_ids().await);
    assert!(used.contains(&vmid), "[{b}] used_ids misses {vmid}");

    volumes(h, vmid, env).await;

    let bootstrap = BootstrapData {
        channel_key: None,
        ssh_public_keys: Vec::new(),
        controller_url: format!("http://{}:8844", env.gateway),
        token: SecretValue::new("conformance-not-a-real-token"),
        vmid,
    };
    ok(b, "start", h.start(vmid, Some(&bootstrap)).await);
    let power = ok(b, "status after start", h.status(vmid).await);
    assert_eq!(
        power,
        PowerState::Running,
        "[{b}] a started VM must be running"
    );
    if env.expect_guest_address {
        guest_address(h, vmid, env).await;
    }

    ok(b, "stop", h.stop(vmid, env.stop_grace).await);
    let power = ok(b, "status after stop", h.status(vmid).await);
    assert_eq!(
        power,
        PowerState::Stopped,
        "[{b}] a stopped VM must be stopped"
    );

    ok(b, "destroy", h.destroy(vmid).await);
    fails(
        b,
        "status after destroy",
        "NotFound",
        h.status(vmid).await,
        not_found,
    );
    let managed = ok(b, "list_managed after destroy", h.list_managed().await);
    assert!(
        !managed.iter().any(|m| m.vmid == vmid),
        "[{b}] destroyed {vmid} still listed"
    );
    fails(
        b,
        "destroy twice",
        "NotFound",
        h.destroy(vmid).await,
        not_found,
    );
}

/// Volume rules, on the stopped VM `vmid`.
async fn volumes(h: &dyn Hypervisor, vmid: Vmid, env: &ConformanceEnv) {
    let b = h.name();
    let ws = WorkspaceId::generate();
    let vol = ok(
        b,
        "create_volume",
        h.create_volume(&ws, env.volume_size_gb).await,
    );
    ok(b, "attach_volume", h.attach_volume(vmid, &vol).await);
    let again = h.attach_volume(vmid, &vol).await;
    fails(
        b,
        "attach of an attached volume",
        "Conflict",
        again,
        conflict,
    );
    let delete = h.delete_volume(&vol).await;
    fails(
        b,
        "delete of an attached volume",
        "Conflict",
        delete,
        conflict,
    );
    ok(b, "detach_volume", h.detach_volume(vmid, &vol).await);
    ok(b, "delete_volume", h.delete_volume(&vol).await);
    let delete = h.delete_volume(&vol).await;
    fails(
        b,
        "delete of a deleted volume",
        "NotFound",
        delete,
        not_found,
    );
}

/// Polls `guest_address` until it reports the spec's address.
async fn guest_address(h: &dyn Hypervisor, vmid: Vmid, env: &ConformanceEnv) {
    let b = h.name();
    for _ in 0..env.address_polls {
        match ok(b, "guest_address", h.guest_address(vmid).await) {
            Some(ip) if ip == env.guest_ip => return,
            Some(ip) => panic!(
                "[{b}] guest_address reported {ip}, expected {}",
                env.guest_ip
            ),
            None => tokio::time::sleep(env.poll_interval).await,
        }
    }
    panic!(
        "[{b}] guest_address still unknown after {} polls",
        env.address_polls
    );
}

/// A test sandbox for [`firewall_conformance`].
fn sandbox(n: u32, egress: Egress) -> SandboxNet {
    let vmid = Vmid::new(990_000 + n).unwrap_or_else(|e| panic!("bad test vmid: {e}"));
    SandboxNet {
        vmid,
        iface: format!("tap{vmid}i0"),
        mac: format!("02:00:00:0f:00:{n:02x}"),
        ip: IpAddr::V4(Ipv4Addr::new(10, 77, 200, u8::try_from(n).unwrap_or(1))),
        egress,
    }
}

/// Runs the firewall conformance suite: `ensure_base` is idempotent, `allow` shows up in
/// `describe`, a bad MAC is `Invalid`, `remove` takes the entry away and is a no-op when
/// repeated.
pub async fn firewall_conformance(f: &dyn Firewall) {
    let b = "firewall";
    ok(b, "ensure_base", f.ensure_base().await);
    ok(b, "ensure_base again", f.ensure_base().await);
    let state = ok(b, "describe", f.describe().await);
    assert!(
        state.base_applied,
        "[{b}] describe must report the base policy after ensure_base"
    );

    let one = sandbox(1, Egress::Nat);
    let cidrs = vec![
        "192.0.2.0/24"
            .parse()
            .unwrap_or_else(|e| panic!("cidr: {e}")),
    ];
    let two = sandbox(
        2,
        Egress::Allowlist {
            cidrs,
            domains: Vec::new(),
        },
    );
    ok(b, "allow", f.allow(&one).await);
    ok(b, "allow a second sandbox", f.allow(&two).await);
    let state = ok(b, "describe", f.describe().await);
    assert!(
        state.sandboxes.contains(&one),
        "[{b}] describe misses {one:?}"
    );
    assert!(
        state.sandboxes.contains(&two),
        "[{b}] describe misses {two:?}"
    );

    let bad = SandboxNet {
        mac: "not-a-mac".to_owned(),
        ..sandbox(3, Egress::Off)
    };
    match f.allow(&bad).await {
        Err(FirewallError::Invalid(_)) => {}
        other => panic!("[{b}] allow with a bad MAC: expected Invalid, got {other:?}"),
    }

    ok(b, "remove", f.remove(one.vmid).await);
    let state = ok(b, "describe after remove", f.describe().await);
    assert!(
        !state.sandboxes.iter().any(|s| s.vmid == one.vmid),
        "[{b}] removed entry remains"
    );
    assert!(
        state.sandboxes.contains(&two),
        "[{b}] remove took another sandbox's entry"
    );
    ok(b, "remove of an unknown sandbox", f.remove(one.vmid).await);
    ok(b, "remove", f.remove(two.vmid).await);
    let state = ok(b, "describe at the end", f.describe().await);
    let left: Vec<_> = state
        .sandboxes
        .iter()
        .filter(|s| s.vmid.get() > 990_000)
        .collect();
    assert!(left.is_empty(), "[{b}] entries left behind: {left:?}");
}
