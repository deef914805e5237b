//! Start (with bootstrap delivery through the guest agent or a cloud-init snippet), stop
//! (graceful shutdown within the grace period, then hard stop), status and guest address.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use agentlab_core::hypervisor::{BootstrapData, HypervisorError, PowerState};
use serde_json::Value;

use crate::client::{Counter, Params, b};
use crate::error::PveError;
use crate::options::BootstrapDelivery;
use crate::pve::ProxmoxHypervisor;

/// Where the bootstrap file lands in the guest (a tmpfs).
pub const GUEST_BOOTSTRAP_PATH: &str = "/run/agentlab/bootstrap.json";

/// Picks the first address inside `subnet` from a `network-get-interfaces` result.
pub fn choose_address(result: &Value, subnet: &ipnet::IpNet) -> Option<IpAddr> {
    result
        .as_array()?
        .iter()
        .filter(|i| i.get("name").and_then(Value::as_str) != Some("lo"))
        .flat_map(|i| {
            i.get("ip-addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|a| a.get("ip-address")?.as_str()?.parse::<IpAddr>().ok())
        .find(|ip| subnet.contains(ip))
}

fn agent_not_ready(e: &PveError) -> bool {
    matches!(e, PveError::Api { status: 500, .. })
        && (e.message().contains("guest agent is not running")
            || e.message().contains("is not running"))
}

/// The cloud-init user-data snippet carrying the bootstrap file. `keys` are the admin keys
/// for `ciuser` (`proxmox.ssh_public_keys`, with sudo, as Proxmox's own `sshkeys`);
/// `agent_keys` the sandbox's keys for the unprivileged `agent` user (daemon config and
/// profile `ssh_public_keys`, validated by the engine, written as JSON strings).
pub fn snippet_yaml(
    json: &str,
    ciuser: Option<&str>,
    keys: &[String],
    agent_keys: &[String],
) -> String {
    let mut out = String::from("#cloud-config\n");
    let quoted = |k: &String| serde_json::to_string(k).unwrap_or_default();
    if ciuser.is_some() || !agent_keys.is_empty() {
        out.push_str("users:\n");
    }
    if let Some(user) = ciuser {
        out.push_str(&format!(
            "  - name: {user}\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys:\n"
        ));
        for k in keys {
            out.push_str(&format!("      - {k}\n"));
        }
    }
    if !agent_keys.is_empty() && ciuser != Some("agent") {
        out.push_str("  - name: agent\n    ssh_authorized_keys:\n");
        for k in agent_keys {
            out.push_str(&format!("      - {}\n", quoted(k)));
        }
    }
    out.push_str(&format!(
        "write_files:\n  - path: {GUEST_BOOTSTRAP_PATH}\n    permissions: '0600'\n    content: |\n      {json}\n"
    ));
    out
}

/// Removes `agentlab-<vmid>-*.yaml` snippets from `dir`.
pub fn remove_snippets(dir: &Path, vmid: u32) -> std::io::Result<usize> {
    let prefix = format!("agentlab-{vmid}-");
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".yaml") {
            std::fs::remove_file(dir.join(&name))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Removes `agentlab-<vmid>-*.yaml` snippets of VMs not in `live` (daemon start-up cleanup);
/// returns the removed file names.
pub fn cleanup_stale_snippets(dir: &Path, live: &[u32]) -> std::io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let vmid = name
            .strip_prefix("agentlab-")
            .filter(|_| name.ends_with(".yaml"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|id| id.parse::<u32>().ok());
        if vmid.is_some_and(|id| !live.contains(&id)) {
            std::fs::remove_file(dir.join(&name))?;
            removed.push(name);
        }
    }
    Ok(removed)
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())
}

impl ProxmoxHypervisor {
    async fn task_call(&self, method: &str, path: &str, params: &Params) -> Result<(), PveError> {
        let call = format!("{method} {path}");
        self.with_lock_retry(|| async {
            let upid = match method {
                "DELETE" => self.api.delete(path, params).await?,
                "PUT" => self.api.put(path, params).await?,
                _ => self.api.post(path, params).await?,
            };
            self.api.wait_task(&call, &upid, &self.opts.poll).await
        })
        .await
    }

    pub(crate) async fn do_start(
        &self,
        vmid: u32,
        bootstrap: Option<&BootstrapData>,
    ) -> Result<(), HypervisorError> {
        let node = self.vm_node(vmid).await?;
        let json = bootstrap
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| HypervisorError::backend(e.to_string()))?;
        if let (Some(json), BootstrapDelivery::Snippet) = (&json, self.opts.bootstrap) {
            let agent_keys = bootstrap.map_or(&[][..], |b| &b.ssh_public_keys[..]);
            self.write_snippet(&node, vmid, json, agent_keys).await?;
        }
        self.task_call(
            "POST",
            &format!("/nodes/{node}/qemu/{vmid}/status/start"),
            &Params::new(),
        )
        .await?;
        if let (Some(json), BootstrapDelivery::GuestAgent) = (&json, self.opts.bootstrap) {
            self.deliver_via_agent(&node, vmid, json).await?;
        }
        tracing::info!(sandbox = vmid, node = %node, "PVE VM started");
        Ok(())
    }

    async fn write_snippet(
        &self,
        node: &str,
        vmid: u32,
        json: &str,
        agent_keys: &[String],
    ) -> Result<(), HypervisorError> {
        let (Some(dir), Some(storage)) = (
            self.opts.snippets_dir.clone(),
            self.opts.snippets_storage.clone(),
        ) else {
            return Err(PveError::Setup(
                "bootstrap: snippet needs snippets_dir and snippets_storage".into(),
            )
            .into());
        };
        let name = format!(
            "agentlab-{vmid}-{}.yaml",
            hex::encode(rand::random::<[u8; 6]>())
        );
        let yaml = snippet_yaml(
            json,
            self.opts.ciuser.as_deref(),
            &self.opts.ssh_public_keys,
            agent_keys,
        );
        let file = dir.join(&name);
        tokio::task::spawn_blocking(move || {
            remove_snippets(&dir, vmid)?;
            write_private(&file, &yaml)
        })
        .await
        .map_err(|e| HypervisorError::backend(e.to_string()))?
        .map_err(|e| PveError::Setup(format!("cannot write snippet {name}: {e}")))?;
        let path = format!("/nodes/{node}/qemu/{vmid}/config");
        let params: Params = vec![("cicustom", format!("user={storage}:snippets/{name}"))];
        self.with_lock_retry(|| self.api.put(&path, &params))
            .await?;
        Ok(())
    }

    async fn deliver_via_agent(
        &self,
        node: &str,
        vmid: u32,
        json: &str,
    ) -> Result<(), HypervisorError> {
        let base = format!("/nodes/{node}/qemu/{vmid}/agent");
        let deadline = Instant::now() + Duration::from_millis(self.opts.poll.agent_timeout_ms);
        let mut interval = Duration::from_millis(self.opts.poll.agent_interval_ms.max(1));
        let params: Params = vec![
            ("file", GUEST_BOOTSTRAP_PATH.to_owned()),
            ("content", json.to_owned()),
        ];
        loop {
            let attempt = async {
                self.api
                    .post(&format!("{base}/ping"), &Params::new())
                    .await?;
                self.api.post(&format!("{base}/file-write"), &params).await
            };
            match attempt.await {
                Ok(_) => return Ok(()),
                Err(e) if agent_not_ready(&e) => self.api.counters.bump(Counter::AgentPoll),
                Err(e) => return Err(e.into()),
            }
            if Instant::now() > deadline {
                let call = format!("POST {base}/ping");
                return Err(PveError::Timeout {
                    call,
                    what: "the QEMU guest agent".into(),
                }
                .into());
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_secs(5));
        }
    }

    pub(crate) async fn do_stop(&self, vmid: u32, grace: Duration) -> Result<(), HypervisorError> {
        let node = self.vm_node(vmid).await?;
        let base = format!("/nodes/{node}/qemu/{vmid}/status");
        if !grace.is_zero() {
            let params: Params = vec![
                ("timeout", grace.as_secs().max(1).to_string()),
                ("forceStop", b(false)),
            ];
            match self
                .task_call("POST", &format!("{base}/shutdown"), &params)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e @ PveError::Task { .. }) => {
                    tracing::warn!(sandbox = vmid, error = %e, "graceful shutdown failed, stopping");
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.task_call("POST", &format!("{base}/stop"), &Params::new())
            .await?;
        Ok(())
    }

    pub(crate) async fn do_status(&self, vmid: u32) -> Result<PowerState, HypervisorError> {
        let mut node = self.vm_node(vmid).await?;
        let status = loop {
            let path = format!("/nodes/{node}/qemu/{vmid}/status/current");
            match self.api.get(&path, &Params::new()).await {
                // The cached node may be stale (migration): look again once.
                Err(e) if e.is_not_found() => match self.relocated(vmid, &node).await? {
                    Some(new) => node = new,
                    None => return Err(HypervisorError::NotFound(format!("VM {vmid}"))),
                },
                other => break other?,
            }
        };
        Ok(
            match (
                status.get("status").and_then(Value::as_str),
                status.get("qmpstatus").and_then(Value::as_str),
            ) {
                (Some("running"), Some("paused" | "suspended" | "prelaunch")) => PowerState::Paused,
                (Some("running"), _) => PowerState::Running,
                _ => PowerState::Stopped,
            },
        )
    }

    pub(crate) async fn do_guest_address(
        &self,
        vmid: u32,
    ) -> Result<Option<IpAddr>, HypervisorError> {
        let node = self.vm_node(vmid).await?;
        let path = format!("/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces");
        match self.api.get(&path, &Params::new()).await {
            Ok(v) => Ok(choose_address(
                v.get("result").unwrap_or(&Value::Null),
                &self.opts.agent_subnet,
            )),
            Err(e)
                if agent_not_ready(&e)
                    || e.message().contains("No QEMU guest agent configured") =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn address_is_chosen_inside_the_agent_subnet() {
        let result = json!([
            {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]},
            {"name": "docker0", "ip-addresses": [{"ip-address": "172.17.0.1", "ip-address-type": "ipv4", "prefix": 16}]},
            {"name": "eth1"},
            {"name": "eth0", "ip-addresses": [
                {"ip-address": "fe80::1", "ip-address-type": "ipv6", "prefix": 64},
                {"ip-address": "10.77.3.9", "ip-address-type": "ipv4", "prefix": 16}]},
        ]);
        let subnet: ipnet::IpNet = "10.77.0.0/16".parse().unwrap();
        assert_eq!(
            choose_address(&result, &subnet),
            Some("10.77.3.9".parse().unwrap())
        );
        let other: ipnet::IpNet = "192.168.0.0/16".parse().unwrap();
        assert_eq!(choose_address(&result, &other), None);
        assert_eq!(choose_address(&json!(null), &subnet), None);
    }

    #[test]
    fn snippets_give_agent_keys_to_the_agent_user_without_sudo() {
        let k = "ssh-ed25519 AAAAC3 a@h".to_owned();
        let yaml = snippet_yaml("{}", None, &[], std::slice::from_ref(&k));
        assert!(
            yaml.starts_with(
                "#cloud-config\nusers:\n  - name: agent\n    ssh_authorized_keys:\n      - \"ssh-ed25519 AAAAC3 a@h\"\n"
            ),
            "{yaml}"
        );
        assert!(!yaml.contains("sudo"), "{yaml}");
        let yaml = snippet_yaml("{}", Some("admin"), &["ssh-rsa AAAA adm".into()], &[k]);
        let admin = yaml.find("name: admin").expect("admin");
        let agent = yaml.find("name: agent").expect("agent");
        assert!(
            admin < agent && yaml.matches("users:").count() == 1,
            "{yaml}"
        );
        assert_eq!(
            snippet_yaml("{}", None, &[], &[]).matches("users:").count(),
            0
        );
    }

    #[test]
    fn snippets_are_private_and_removed_per_vm() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = snippet_yaml(
            r#"{"token":"t"}"#,
            Some("agent"),
            &["ssh-ed25519 AAAA k".into()],
            &[],
        );
        assert!(yaml.starts_with("#cloud-config\n") && yaml.contains("      {\"token\":\"t\"}\n"));
        write_private(&dir.path().join("agentlab-101-aa.yaml"), &yaml).unwrap();
        write_private(&dir.path().join("agentlab-1010-bb.yaml"), &yaml).unwrap();
        assert!(
            write_private(&dir.path().join("agentlab-101-aa.yaml"), &yaml).is_err(),
            "never overwrites"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("agentlab-101-aa.yaml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(remove_snippets(dir.path(), 101).unwrap(), 1);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "other VMs' snippets stay"
        );
        std::fs::write(dir.path().join("unrelated.yaml"), "x").unwrap();
        assert!(
            cleanup_stale_snippets(dir.path(), &[1010])
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            cleanup_stale_snippets(dir.path(), &[]).unwrap(),
            vec!["agentlab-1010-bb.yaml".to_owned()]
        );
        assert!(dir.path().join("unrelated.yaml").exists());
    }
}
