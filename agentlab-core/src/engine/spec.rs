//! Translation of a profile and sandbox into the backend-neutral [`VmSpec`].

use std::net::{IpAddr, Ipv4Addr};

use crate::engine::lab::LabSettings;
use crate::hypervisor::{NetAttachment, Resources, VmSpec};
use crate::model::Sandbox;
use crate::profile::Profile;

/// The VM spec for `sb` created from `profile`, with its derived address `ip`.
pub fn vm_spec(settings: &LabSettings, profile: &Profile, sb: &Sandbox, ip: Ipv4Addr) -> VmSpec {
    VmSpec {
        vmid: sb.vmid,
        name: sb.name.clone(),
        template_vmid: profile.template_vmid,
        node: profile.pinned_node().map(str::to_owned),
        full_clone: profile.storage.full_clone,
        resources: Resources {
            cores: profile.resources.cores,
            memory_mb: profile.resources.memory_mb,
            cpulimit: profile.resources.cpulimit,
            balloon_mb: profile.resources.balloon,
        },
        root_size_gb: profile.storage.root_size_gb,
        net: NetAttachment {
            bridge: profile.network.bridge.clone(),
            model: profile.network.model.clone(),
            mac: crate::engine::alloc::mac_for(sb.vmid),
            ip: IpAddr::V4(ip),
            prefix_len: settings.subnet_prefix,
            gateway: IpAddr::V4(settings.gateway),
            firewall: true,
        },
        profile: profile.name.clone(),
        ssh_public_keys: ssh_keys(settings, profile),
    }
}

/// The SSH keys a sandbox of `profile` accepts: the daemon's, then the profile's.
pub fn ssh_keys(settings: &LabSettings, profile: &Profile) -> Vec<String> {
    crate::ssh_key::merge(&settings.ssh_public_keys, &profile.ssh_public_keys)
}
