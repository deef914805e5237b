//! Wiring of the fake backend (feature `fake`): VMs kept in `<work_dir>/fake-state.json` so
//! a restarted process finds what it created; its boot hook runs `agent-runner` (or
//! `boot_command`) as a local process.

use std::sync::Arc;

use agentlab_core::Hypervisor;
use agentlab_core::config::Config;
use agentlab_core::fake::FakeHypervisor;
use agentlab_core::fake::boot::ProcessBootHook;
use agentlab_core::fake::hypervisor::{FakeOp, Fault, FaultKind};

use crate::wiring::WiringError;

fn err(e: impl std::fmt::Display) -> WiringError {
    WiringError::Backend {
        backend: "fake",
        message: e.to_string(),
    }
}

/// The fake backend keeps its VMs in `<work_dir>/fake-state.json` so a restarted daemon finds
/// what it created; its boot hook runs `agent-runner` (or `boot_command`) as a local process.
pub(crate) fn hypervisor(cfg: &Config) -> Result<Arc<dyn Hypervisor>, WiringError> {
    let work = cfg
        .fake
        .work_dir
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("fake-vms"));
    std::fs::create_dir_all(&work).map_err(|e| err(format!("creating {}: {e}", work.display())))?;
    let state = work.join("fake-state.json");
    let fake = FakeHypervisor::persistent(&state)
        .map_err(|e| err(format!("loading {}: {e}", state.display())))?;
    let hook = match (&cfg.fake.boot_command, &cfg.fake.runner_path) {
        (Some(argv), _) if !argv.is_empty() => Some(ProcessBootHook::new(
            work,
            argv[0].clone(),
            argv[1..].to_vec(),
        )),
        (_, Some(runner)) => Some(ProcessBootHook::agent_runner(
            work,
            runner.display().to_string(),
        )),
        _ => None,
    };
    if let Some(h) = hook {
        fake.set_boot_hook(Arc::new(h));
    }
    for (op, msg) in &cfg.fake.faults {
        fake.fail_always(fake_op(op)?, Fault::new(FaultKind::Backend, msg.clone()));
    }
    for (op, ms) in &cfg.fake.latency_ms {
        fake.set_latency(fake_op(op)?, std::time::Duration::from_millis(*ms));
    }
    Ok(Arc::new(fake))
}

/// Maps a config operation name (`create`, `guest_address`, …) to the fake's operation.
fn fake_op(name: &str) -> Result<FakeOp, WiringError> {
    FakeOp::ALL
        .into_iter()
        .find(|op| {
            let debug = format!("{op:?}");
            let snake: String = debug
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let lower = c.to_ascii_lowercase();
                    if c.is_ascii_uppercase() && i > 0 {
                        vec!['_', lower]
                    } else {
                        vec![lower]
                    }
                })
                .collect();
            snake == name
        })
        .ok_or_else(|| {
            err(format!(
                "fake.faults/latency_ms: unknown operation {name:?}"
            ))
        })
}
