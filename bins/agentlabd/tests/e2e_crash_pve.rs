//! The crash matrix with `backend: pve` against the PVE simulator (driver: `e2e/crash.rs`):
//! the daemon is SIGKILLed at every provisioning step, job step, artifact upload and destroy
//! step, restarted, and every sandbox and job must settle with a cause; once everything is
//! destroyed the simulator holds no VM but the template, no volume AgentLab made, no running
//! task, the data dir no `.part` file and no runner process is left. Every request the
//! backend sent must be schema-valid.
#![cfg(test)]
#![cfg(feature = "failpoints")]

#[path = "e2e/harness.rs"]
mod harness;

#[path = "e2e/crash.rs"]
mod crash;

use std::sync::Arc;
use std::time::Duration;

use agentlab_core::fake::boot::ProcessBootHook;
use agentlab_pve::sim::{SeedVm, SimConfig, Simulator, process_boot_hook};
use crash::{init_repo, part_files, processes_under, profile, run_matrix, run_point};
use harness::{Daemon, bin};

const TEMPLATE: u32 = 9000;

/// What AgentLab left on the simulator and the host.
fn leftovers(sim: &Simulator, d: &Daemon) -> Vec<String> {
    let mut left: Vec<String> = sim
        .vm_ids()
        .into_iter()
        .filter(|v| *v != TEMPLATE)
        .map(|v| format!("VM {v}"))
        .collect();
    left.extend(
        sim.volumes()
            .into_iter()
            .filter(|(_, owner)| *owner != TEMPLATE)
            .map(|(id, owner)| format!("volume {id} (owner {owner})")),
    );
    left.extend(sim.running_tasks().into_iter().map(|u| format!("task {u}")));
    left.extend(part_files(d));
    left.extend(processes_under(d.dir.path()));
    left
}

/// One kill point against a fresh simulator.
fn point(
    rt: &tokio::runtime::Handle,
    schema: &std::path::Path,
    point: &str,
    scenario: crash::Scenario,
) -> Result<(), String> {
    let sim = rt
        .block_on(Simulator::start(
            SimConfig::new(schema.to_owned()),
            "127.0.0.1:0",
        ))
        .map_err(|e| format!("{point}: simulator: {e}"))?;
    sim.add_vm(&SeedVm::template(TEMPLATE, "pve1"));
    let pve = harness::sim_pve_section(&sim, "pve1", "local-lvm");
    let agent = "echo crash-agent; echo x > \"$AGENTLAB_ARTIFACTS_DIR/out.txt\"";
    let mut d = Daemon::start_backend(Some(&profile(agent)), "pve", &pve);
    // The simulator's "boot" runs the real runner with the bootstrap file the backend wrote
    // through the guest agent; its work dirs live under the daemon's dir, so a runner left
    // running is found by `processes_under`.
    let hook = ProcessBootHook::agent_runner(
        d.dir.path().join("vms"),
        bin("agent-runner").display().to_string(),
    );
    sim.set_boot_hook(process_boot_hook(Arc::new(hook)));
    init_repo(&d);
    run_point(&mut d, point, scenario, Duration::from_secs(150), &|d| {
        leftovers(&sim, d)
    })?;
    let invalid: Vec<String> = sim
        .requests()
        .into_iter()
        .filter_map(|r| {
            r.validation
                .err()
                .map(|e| format!("{} {}: {e}", r.method, r.path))
        })
        .collect();
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(format!("{point}: schema-invalid requests: {invalid:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_every_kill_point_on_the_pve_simulator_leaves_nothing() {
    let Some(schema) = harness::pve_schema_or_skip() else {
        return;
    };
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        run_matrix(|p, scenario| point(&rt, &schema, p, scenario));
    })
    .await
    .unwrap();
}
