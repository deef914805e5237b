//! The crash matrix on the fake backend (driver: `e2e/crash.rs`): SIGKILL at every kill
//! point, restart, everything settles with a cause, and no VM, volume, runner process, VM
//! directory or `.part` file is left.
//! Fake backend here; the local backend's points are in `e2e_crash_local.rs` (in its netlab),
//! the PVE simulator's in `e2e_crash_pve.rs`.
#![cfg(test)]
#![cfg(feature = "failpoints")]

#[path = "e2e/harness.rs"]
mod harness;

#[path = "e2e/crash.rs"]
mod crash;

use crash::{init_repo, part_files, processes_under, profile, run_matrix, run_point};
use harness::{Daemon, bin};

fn start() -> Daemon {
    let extra = format!("  runner_path: {}\n", bin("agent-runner").display());
    let d = Daemon::start_with(
        Some(&profile(
            "echo crash-agent; echo x > \"$AGENTLAB_ARTIFACTS_DIR/out.txt\"",
        )),
        &extra,
    );
    init_repo(&d);
    d
}

/// Everything left behind once every sandbox is destroyed and every workspace deleted.
fn leftovers(d: &Daemon) -> Vec<String> {
    let mut left = Vec::new();
    let path = d.dir.path().join("vms/fake-state.json");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|_| b"{}".to_vec())).unwrap();
    for vm in state["vms"].as_array().into_iter().flatten() {
        if vm["ours"] == true {
            left.push(format!("VM {}", vm["vmid"]));
        }
    }
    for v in state["volumes"].as_array().into_iter().flatten() {
        left.push(format!("volume {}", v["id"]));
    }
    // Per-VM directories of the fake (bootstrap file, runner work dir, logs).
    if let Ok(rd) = std::fs::read_dir(d.dir.path().join("vms")) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                left.push(format!("dir {}", e.path().display()));
            }
        }
    }
    left.extend(part_files(d));
    left.extend(processes_under(d.dir.path()));
    left
}

#[test]
fn sigkill_at_every_kill_point_then_restart_leaves_nothing() {
    run_matrix(|point, scenario| {
        run_point(
            &mut start(),
            point,
            scenario,
            std::time::Duration::from_secs(150),
            &leftovers,
        )
    });
}
