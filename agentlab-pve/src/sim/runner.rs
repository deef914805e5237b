//! Plays the guest for the simulator with the engine's [`ProcessBootHook`]: when the bootstrap
//! file lands through the simulated guest agent (`file-write` to
//! `/run/agentlab/bootstrap.json`), the real `agent-runner` (or any program) is started with
//! that file; when the VM stops it is killed.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::fake::boot::{BootEvent as FakeBootEvent, BootHook as _, ProcessBootHook};
use agentlab_core::hypervisor::{BootstrapData, NetAttachment, Resources, VmSpec};
use agentlab_core::ids::Vmid;

use super::{BootEvent, BootHook};
use crate::lifecycle::GUEST_BOOTSTRAP_PATH;

fn placeholder_spec(vmid: Vmid) -> VmSpec {
    VmSpec {
        vmid,
        name: format!("sim-{vmid}"),
        template_vmid: 0,
        node: None,
        full_clone: false,
        resources: Resources {
            cores: 1,
            memory_mb: 512,
            cpulimit: None,
            balloon_mb: None,
        },
        root_size_gb: None,
        net: NetAttachment {
            bridge: String::new(),
            model: "virtio".into(),
            mac: String::new(),
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            prefix_len: 0,
            gateway: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            firewall: false,
        },
        profile: String::new(),
        ssh_public_keys: Vec::new(),
    }
}

/// A simulator [`BootHook`] that drives `process` (e.g. [`ProcessBootHook::agent_runner`]).
pub fn process_boot_hook(process: Arc<ProcessBootHook>) -> BootHook {
    Arc::new(move |event: &BootEvent| match event {
        BootEvent::FileWritten {
            vmid,
            path,
            content,
        } if path == GUEST_BOOTSTRAP_PATH => {
            let Ok(vmid) = Vmid::new(*vmid) else { return };
            let Ok(data) = serde_json::from_slice::<BootstrapData>(content) else {
                tracing::warn!(sandbox = %vmid, "sim: bootstrap file is not BootstrapData");
                return;
            };
            let ev = FakeBootEvent {
                vmid,
                bootstrap: Some(data),
                spec: placeholder_spec(vmid),
            };
            if let Err(e) = process.on_start(&ev) {
                tracing::warn!(sandbox = %vmid, error = %e, "sim: guest program did not start");
            }
        }
        BootEvent::Stopped { vmid } => {
            let Ok(vmid) = Vmid::new(*vmid) else { return };
            let process = Arc::clone(&process);
            std::thread::spawn(move || process.on_stop(vmid, Duration::ZERO));
        }
        _ => {}
    })
}
