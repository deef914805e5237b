//! End to end: the backend starts a VM on the simulator, delivers the bootstrap file through
//! the simulated guest agent, the simulator's "boot" runs the real `agent-runner` with it, and
//! the runner presents the token to the controller.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentlab_core::fake::boot::ProcessBootHook;
use agentlab_core::hypervisor::{BootstrapData, Hypervisor};
use agentlab_core::secrets::SecretValue;
use agentlab_pve::sim::process_boot_hook;
use axum::Json;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Builds `agent-runner` (same workspace) and returns its path; `None` = skip.
fn agent_runner() -> Option<PathBuf> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "agent-runner", "--bin", "agent-runner"])
        .current_dir(&root)
        .status();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("debug/agent-runner");
    if status.is_ok_and(|s| s.success()) && bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot build agent-runner"
    );
    eprintln!("SKIP: cannot build agent-runner");
    None
}

#[tokio::test]
async fn runner_receives_its_bootstrap_through_the_guest_agent() {
    let Some((sim, hv)) = common::setup(|_| {}).await else {
        return;
    };
    let Some(runner) = agent_runner() else { return };

    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen2 = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/bootstrap/fetch",
        axum::routing::post(move |Json(body): Json<Value>| {
            let seen = Arc::clone(&seen2);
            async move {
                seen.lock().unwrap().push(body);
                let err = json!({"error": {"code": "forbidden", "message": "token refused", "details": {}}});
                (StatusCode::FORBIDDEN, Json(err))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let controller = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(ProcessBootHook::agent_runner(
        dir.path(),
        runner.to_string_lossy(),
    ));
    sim.set_boot_hook(process_boot_hook(Arc::clone(&hook)));

    let s = common::spec(9600);
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    let boot = BootstrapData {
        channel_key: None,
        ssh_public_keys: Vec::new(),
        controller_url: controller,
        token: SecretValue::new("e2e-boot-token"),
        vmid: s.vmid,
    };
    hv.start(s.vmid, Some(&boot)).await.unwrap();

    let mut body = None;
    for _ in 0..500 {
        if let Some(b) = seen.lock().unwrap().first().cloned() {
            body = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = body.expect("agent-runner contacted the controller");
    assert_eq!(body["token"], "e2e-boot-token");
    assert_eq!(body["vmid"], 9600);
    let log = std::fs::read_to_string(hook.log_path(s.vmid)).unwrap_or_default();
    assert!(
        !log.contains("e2e-boot-token"),
        "token not in the runner log"
    );

    hv.destroy(s.vmid).await.unwrap();
    common::assert_schema_clean(&sim);
}
