//! Translation of a profile and sandbox into the backend-neutral [`VmSpec`] and [`Egress`].

use std::net::{IpAddr, Ipv4Addr};

use crate::engine::lab::LabSettings;
use crate::firewall::Egress;
use crate::hypervisor::{NetAttachment, Resources, VmSpec};
use crate::model::Sandbox;
use crate::profile::{NetworkMode, Profile};

/// The VM spec for `sb` created from `profile`, with its derived address `ip`.
pub fn vm_spec(settings: &LabSettings, profile: &Profile, sb: &Sandbox, ip: Ipv4Addr) -> VmSpec {
    let node = profile.node.clone().filter(|n| n != "auto");
    VmSpec {
        vmid: sb.vmid,
        name: sb.name.clone(),
        template_vmid: profile.template_vmid,
        node,
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
    }
}

/// The egress policy for a profile's `network.mode` and `network.allowlist`.
pub fn egress_for(profile: &Profile) -> Egress {
    match profile.network.mode {
        NetworkMode::Nat => Egress::Nat,
        NetworkMode::Off => Egress::Off,
        NetworkMode::Allowlist => {
            let mut cidrs = Vec::new();
            let mut domains = Vec::new();
            for entry in &profile.network.allowlist {
                if let Ok(net) = entry.parse::<ipnet::IpNet>() {
                    cidrs.push(net);
                } else if let Ok(addr) = entry.parse::<IpAddr>() {
                    cidrs.push(ipnet::IpNet::from(addr));
                } else {
                    domains.push(entry.clone());
                }
            }
            Egress::Allowlist { cidrs, domains }
        }
    }
}
