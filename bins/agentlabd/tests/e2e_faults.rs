//! End to end: injected hypervisor faults make the sandbox FAILED with the cause shown by
//! `agentlab sandbox show`, nothing we created survives, and a SIGKILLed daemon restarted in
//! the middle of provisioning ends consistent.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use harness::Daemon;

fn fake_vms(d: &Daemon) -> serde_json::Value {
    let path = d.dir.path().join("vms/fake-state.json");
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|_| b"{}".to_vec())).unwrap()
}

fn owned_vms(d: &Daemon) -> Vec<u64> {
    fake_vms(d)["vms"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|v| v["ours"] == true)
                .filter_map(|v| v["vmid"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn each_provisioning_fault_is_reported_and_cleaned_up() {
    for (op, step) in [
        ("create", "clone"),
        ("configure", "configure"),
        ("start", "start"),
        ("guest_address", "guest"),
    ] {
        let d = Daemon::start(&format!("  faults:\n    {op}: injected {op} failure\n"));
        let sb = d.json(&["sandbox", "new", "--profile", "interactive-dev"]);
        let vmid = sb["vmid"].as_u64().unwrap();
        let v = d.wait_sandbox(vmid, |v| v["state"] == "FAILED");
        let err = v["last_error"].as_str().unwrap();
        assert!(
            err.contains(step)
                && err.contains(op)
                && err.contains(&format!("injected {op} failure")),
            "{op}: {err}"
        );
        let shown = d.cli(&["sandbox", "show", &vmid.to_string()]);
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(
            text.contains(&format!("injected {op} failure")),
            "{op}: sandbox show did not print the cause:\n{text}"
        );
        let events = d.json(&["logs", &vmid.to_string()]);
        let failed: Vec<_> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "provision_failed")
            .collect();
        assert_eq!(failed.len(), 1, "{op}: {events}");
        assert_eq!(failed[0]["payload"]["call"], op);
        assert!(owned_vms(&d).is_empty(), "{op}: leaked {:?}", owned_vms(&d));
    }
}

#[test]
fn sigkill_during_provisioning_then_restart_is_consistent() {
    for op in ["configure", "start"] {
        let mut d = Daemon::start(&format!("  latency_ms:\n    {op}: 1500\n"));
        let sb = d.json(&["sandbox", "new", "--profile", "interactive-dev"]);
        let vmid = sb["vmid"].as_u64().unwrap();
        d.wait_sandbox(vmid, |v| {
            v["state"] == "PROVISIONING" || v["state"] == "BOOTING"
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        d.kill();
        d.spawn();
        let v = d.wait_sandbox(vmid, |v| v["state"] == "FAILED");
        assert_eq!(v["vm_created"], false, "{op}: {v}");
        assert!(
            v["last_error"].as_str().unwrap().contains("restarted"),
            "{op}: {v}"
        );
        let live: Vec<u64> = d
            .json(&["sandbox", "list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["vm_created"] == true)
            .filter_map(|s| s["vmid"].as_u64())
            .collect();
        assert_eq!(
            owned_vms(&d),
            live,
            "{op}: the fake holds VMs the daemon does not account for"
        );
        // The state file is the fake's real record: a new sandbox shows up in it.
        let sb = d.json(&["sandbox", "new", "--profile", "interactive-dev"]);
        let new = sb["vmid"].as_u64().unwrap();
        d.wait_sandbox(new, |v| v["state"] == "READY");
        assert!(owned_vms(&d).contains(&new), "{op}: {:?}", owned_vms(&d));
    }
}
