//! The backend's TLS trust modes against the simulator in HTTPS mode.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use agentlab_core::hypervisor::{Hypervisor, HypervisorError};
use agentlab_pve::sim::{SeedVm, SimConfig, Simulator};
use agentlab_pve::{ProxmoxHypervisor, PveError, TlsOptions};

async fn https_sim() -> Option<Simulator> {
    let path = common::schema_or_skip()?;
    let sim = Simulator::start_https(SimConfig::new(path), "127.0.0.1:0")
        .await
        .unwrap();
    sim.add_vm(&SeedVm::template(9000, "pve1"));
    Some(sim)
}

fn backend(sim: &Simulator, tls: TlsOptions) -> Result<ProxmoxHypervisor, PveError> {
    let mut opts = common::options(sim);
    opts.tls = tls;
    ProxmoxHypervisor::new(opts)
}

#[tokio::test]
async fn ca_file_and_fingerprint_pinning_work() {
    let Some(sim) = https_sim().await else { return };
    assert!(sim.url().starts_with("https://"));
    let material = sim.tls().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("pve-root-ca.pem");
    std::fs::write(&ca, &material.ca_pem).unwrap();

    let hv = backend(
        &sim,
        TlsOptions {
            ca_file: Some(ca),
            ..TlsOptions::default()
        },
    )
    .unwrap();
    assert!(hv.used_ids().await.unwrap().iter().any(|v| v.get() == 9000));

    let hv = backend(
        &sim,
        TlsOptions {
            fingerprint: Some(material.fingerprint.clone()),
            ..TlsOptions::default()
        },
    )
    .unwrap();
    assert!(hv.used_ids().await.is_ok());

    let hv = backend(
        &sim,
        TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        },
    )
    .unwrap();
    assert!(hv.used_ids().await.is_ok());
    sim.assert_all_valid();
}

#[tokio::test]
async fn untrusted_certificates_are_refused() {
    let Some(sim) = https_sim().await else { return };
    let hv = backend(&sim, TlsOptions::default()).unwrap();
    let err = hv.used_ids().await.unwrap_err();
    assert!(
        matches!(err, HypervisorError::Unavailable(_)),
        "system roots do not trust the sim CA: {err:?}"
    );

    let wrong = ["AB"; 32].join(":");
    let hv = backend(
        &sim,
        TlsOptions {
            fingerprint: Some(wrong),
            ..TlsOptions::default()
        },
    )
    .unwrap();
    let err = hv.used_ids().await.unwrap_err();
    assert!(matches!(err, HypervisorError::Unavailable(_)), "{err:?}");
    assert!(sim.requests().is_empty(), "no request got through");

    let both = TlsOptions {
        insecure: true,
        fingerprint: Some("AA".into()),
        ca_file: None,
    };
    assert!(matches!(backend(&sim, both), Err(PveError::Setup(_))));
    let short = TlsOptions {
        fingerprint: Some("AA:BB".into()),
        ..TlsOptions::default()
    };
    assert!(matches!(backend(&sim, short), Err(PveError::Setup(_))));
}
