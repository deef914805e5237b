//! The engine's hypervisor conformance kit, run against `ProxmoxHypervisor` on the simulator.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use agentlab_core::testkit::hypervisor::{ConformanceEnv, hypervisor_conformance};
use common::{assert_schema_clean, setup};

#[tokio::test]
async fn proxmox_hypervisor_passes_the_conformance_kit() {
    let Some((sim, hv)) = setup(|_| {}).await else {
        return;
    };
    let env = ConformanceEnv {
        template_vmid: common::TEMPLATE,
        vmid_range: 9500..=9599,
        node: Some("pve1".into()),
        bridge: "vmbr1".into(),
        guest_ip: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100)),
        prefix_len: 16,
        gateway: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
        expect_guest_address: true,
        address_polls: 200,
        poll_interval: Duration::from_millis(10),
        stop_grace: Duration::from_secs(5),
        volume_size_gb: 1,
    };
    hypervisor_conformance(&hv, &env).await;
    assert_eq!(
        sim.vm_ids(),
        vec![100, 9000],
        "the suite leaves nothing behind"
    );
    assert_schema_clean(&sim);
}
