//! Create (linked/full clone from the template, bounded per template, lock timeouts retried)
//! and configure (CPU, memory, balloon, net0 with the firewall flag, ipconfig0, tags,
//! description, cloud-init user/keys, root-disk growth).

use std::net::IpAddr;

use agentlab_core::hypervisor::{HypervisorError, VmHandle, VmSpec};
use serde_json::Value;

use crate::client::{Counter, Params, b};
use crate::error::PveError;
use crate::place::Reservation;
use crate::pve::ProxmoxHypervisor;

/// Percent-encodes strictly as PVE's `urlencoded` format demands (space → `%20`, …).
pub fn strict_urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => char::from(c).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// Marker at the start of every AgentLab VM's description.
pub const MARKER: &str = "Managed by AgentLab";

/// The description AgentLab gives its VMs.
pub fn description(profile: &str) -> String {
    format!("{MARKER} (profile: {profile}). Destroyed with its sandbox; do not edit.")
}

/// `net0` value: `<model>=<mac>,bridge=<bridge>,firewall=<0|1>`.
pub fn net0(model: &str, mac: &str, bridge: &str, firewall: bool) -> String {
    format!("{model}={mac},bridge={bridge},firewall={}", b(firewall))
}

/// `ipconfig0` value for a static address.
pub fn ipconfig0(ip: IpAddr, prefix: u8, gateway: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("ip={ip}/{prefix},gw={gateway}"),
        IpAddr::V6(_) => format!("ip6={ip}/{prefix},gw6={gateway}"),
    }
}

/// The boot disk key of a config and its size in bytes.
pub fn root_disk(config: &Value) -> Option<(String, u64)> {
    let from_boot = config
        .get("boot")
        .and_then(Value::as_str)
        .and_then(|b| b.split(',').find_map(|p| p.strip_prefix("order=")))
        .and_then(|o| {
            o.split(';')
                .find(|d| !d.starts_with("net") && !d.starts_with("ide2"))
        })
        .map(str::to_owned);
    let key = from_boot.or_else(|| {
        ["scsi0", "virtio0", "sata0", "ide0"]
            .iter()
            .find(|k| config.get(**k).is_some())
            .map(|k| (*k).to_owned())
    })?;
    let value = config.get(&key)?.as_str()?;
    let size = value
        .split(',')
        .find_map(|p| p.strip_prefix("size="))
        .and_then(parse_size)
        .unwrap_or(0);
    Some((key, size))
}

/// Parses `8G`, `512M`, … into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    Some((n * mult as f64) as u64)
}

impl ProxmoxHypervisor {
    pub(crate) async fn do_create(&self, spec: &VmSpec) -> Result<VmHandle, HypervisorError> {
        let vmid = spec.vmid.get();
        match self
            .api
            .get("/cluster/nextid", &vec![("vmid", vmid.to_string())])
            .await
        {
            Err(PveError::Api {
                status: 400,
                message,
                ..
            }) if message.contains("already exists") => {
                return Err(HypervisorError::AlreadyExists(format!("VM {vmid}")));
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let vms = self.cluster_vms().await?;
        let (plan, _node_permit) = self.place(spec, &vms).await?;
        let _reservation = Reservation::new(self, &plan.node, spec.resources.memory_mb);
        let target = plan.node.clone();
        let mut params: Params = vec![
            ("newid", vmid.to_string()),
            ("name", spec.name.clone()),
            ("full", b(spec.full_clone)),
        ];
        if target != plan.source_node {
            params.push(("target", target.clone()));
        }
        if spec.full_clone {
            params.push(("storage", self.opts.storage.clone()));
        }
        if let Some(pool) = &self.opts.pool {
            params.push(("pool", pool.clone()));
        }
        params.push(("description", description(&spec.profile)));
        let path = format!(
            "/nodes/{}/qemu/{}/clone",
            plan.source_node, plan.source_vmid
        );
        let call = format!("POST {path}");
        let permits = self.clone_permits(plan.source_vmid);
        let permit = match std::sync::Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.api.counters.bump(Counter::ClonePermitWait);
                permits
                    .acquire_owned()
                    .await
                    .map_err(|_| HypervisorError::backend("clone permits closed"))?
            }
        };
        let cloned = self
            .with_lock_retry(|| async {
                let upid = self.api.post(&path, &params).await?;
                // Recorded before waiting: a daemon killed now leaves the UPID for its
                // successor (see `journal`).
                if let Some(u) = upid.as_str() {
                    self.journal.record(vmid, u).await;
                }
                self.api.wait_task(&call, &upid, &self.opts.poll).await
            })
            .await;
        // The task ended (or never started): nothing to find later. Otherwise (PVE stopped
        // answering mid-wait) the record stays for `destroy`.
        let ended = match &cloned {
            Ok(()) | Err(PveError::Task { .. }) => true,
            // 595/596/599: the node did not answer; the task may still run.
            Err(PveError::Api { status, .. }) => *status < 595,
            Err(_) => false,
        };
        if ended {
            self.journal.remove(vmid).await;
        }
        cloned?;
        drop(permit);
        self.remember_node(vmid, &target);
        // Mark it ours at once, so a failure before `configure` can still be cleaned up.
        let config_path = format!("/nodes/{target}/qemu/{vmid}/config");
        let tag: Params = vec![("tags", self.opts.tag.clone())];
        if let Err(e) = self
            .with_lock_retry(|| self.api.put(&config_path, &tag))
            .await
        {
            tracing::warn!(sandbox = vmid, error = %e, "tagging the new clone failed, removing it");
            let del: Params = vec![("purge", b(true)), ("destroy-unreferenced-disks", b(true))];
            let vm_path = format!("/nodes/{target}/qemu/{vmid}");
            let call = format!("DELETE {vm_path}");
            let cleanup = async {
                let upid = self.api.delete(&vm_path, &del).await?;
                self.api.wait_task(&call, &upid, &self.opts.poll).await
            };
            if let Err(c) = cleanup.await {
                tracing::warn!(sandbox = vmid, error = %c, "removing the untagged clone failed");
            }
            self.forget_node(vmid);
            return Err(e.into());
        }
        tracing::info!(sandbox = %spec.vmid, node = %target, source = plan.source_vmid, template = spec.template_vmid, "PVE clone created");
        Ok(VmHandle {
            vmid: spec.vmid,
            node: target,
            iface: Some(format!("tap{vmid}i0")),
        })
    }

    pub(crate) async fn do_configure(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let vmid = spec.vmid.get();
        let node = self.vm_node(vmid).await?;
        let r = &spec.resources;
        let n = &spec.net;
        let mut params: Params = vec![
            ("cores", r.cores.to_string()),
            ("memory", r.memory_mb.to_string()),
            ("balloon", r.balloon_mb.unwrap_or(0).to_string()),
            ("net0", net0(&n.model, &n.mac, &n.bridge, n.firewall)),
            ("ipconfig0", ipconfig0(n.ip, n.prefix_len, n.gateway)),
            ("tags", self.opts.tag.clone()),
            // No package upgrade on first boot: sandboxes must start fast and reproducibly.
            ("ciupgrade", b(false)),
            ("description", description(&spec.profile)),
        ];
        if let Some(limit) = r.cpulimit {
            params.push(("cpulimit", format!("{limit}")));
        }
        if let Some(user) = &self.opts.ciuser {
            params.push(("ciuser", user.clone()));
        }
        if !self.opts.ssh_public_keys.is_empty() {
            params.push((
                "sshkeys",
                strict_urlencode(&self.opts.ssh_public_keys.join("\n")),
            ));
        }
        let path = format!("/nodes/{node}/qemu/{vmid}/config");
        self.with_lock_retry(|| self.api.put(&path, &params))
            .await?;
        if let Some(gb) = spec.root_size_gb {
            let config = self.vm_config(&node, vmid).await?;
            let (disk, current) = root_disk(&config)
                .ok_or_else(|| HypervisorError::backend(format!("VM {vmid} has no root disk")))?;
            if u64::from(gb) << 30 > current {
                let path = format!("/nodes/{node}/qemu/{vmid}/resize");
                let call = format!("PUT {path}");
                let p: Params = vec![("disk", disk), ("size", format!("{gb}G"))];
                self.with_lock_retry(|| async {
                    let upid = self.api.put(&path, &p).await?;
                    self.api.wait_task(&call, &upid, &self.opts.poll).await
                })
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn property_strings() {
        assert_eq!(
            net0("virtio", "02:00:00:00:00:01", "vmbr1", true),
            "virtio=02:00:00:00:00:01,bridge=vmbr1,firewall=1"
        );
        let ip: IpAddr = "10.77.0.5".parse().unwrap();
        let gw: IpAddr = "10.77.0.1".parse().unwrap();
        assert_eq!(ipconfig0(ip, 16, gw), "ip=10.77.0.5/16,gw=10.77.0.1");
        let ip6: IpAddr = "fd00::5".parse().unwrap();
        let gw6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(ipconfig0(ip6, 64, gw6), "ip6=fd00::5/64,gw6=fd00::1");
    }

    #[test]
    fn sshkeys_are_strictly_percent_encoded() {
        let enc = strict_urlencode("ssh-ed25519 AAAA+/= me@host\nssh-rsa B");
        assert_eq!(enc, "ssh-ed25519%20AAAA%2B%2F%3D%20me%40host%0Assh-rsa%20B");
        assert!(
            enc.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-%_.!~*'()".contains(&b))
        );
    }

    #[test]
    fn root_disk_from_boot_order_or_first_disk() {
        let cfg = json!({"boot": "order=virtio0;ide2;net0", "virtio0": "local-lvm:vm-1-disk-0,size=10G", "scsi0": "x,size=1G"});
        assert_eq!(root_disk(&cfg), Some(("virtio0".into(), 10 << 30)));
        let cfg = json!({"scsi0": "local-lvm:vm-1-disk-0,size=512M", "ide2": "local-lvm:vm-1-cloudinit,media=cdrom"});
        assert_eq!(root_disk(&cfg), Some(("scsi0".into(), 512 << 20)));
        assert_eq!(root_disk(&json!({})), None);
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
    }
}
