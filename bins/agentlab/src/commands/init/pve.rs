//! What `init` cannot do on a Proxmox host and prints instead: the agent bridge stanza for
//! `/etc/network/interfaces` and the `pveum` commands for the API token's roles
//! (`docs/proxmox.md`, "Minimal privileges").

use agentlab_core::config::Config;

use super::plan::skip;
use super::steps::Step;

/// The template id the shipped profiles clone.
const TEMPLATE_VMID: u32 = 9000;

/// Printed steps for backend pve.
pub fn instructions(cfg: &Config) -> Vec<Step> {
    vec![
        skip(
            &format!("bridge {} (Proxmox)", cfg.network.bridge),
            &format!(
                "not run by init (PVE owns the bridges): add to /etc/network/interfaces, then \
                 run ifreload -a\n{}",
                bridge_stanza(cfg)
            ),
        ),
        skip(
            "Proxmox token and roles",
            &format!(
                "not run by init (pveum needs the cluster's root): on a Proxmox node run\n{}",
                pveum_commands(cfg)
            ),
        ),
    ]
}

/// The `/etc/network/interfaces` stanza of the agent bridge.
pub fn bridge_stanza(cfg: &Config) -> String {
    let n = &cfg.network;
    format!(
        "auto {br}\niface {br} inet static\n        address {gw}/{len}\n        bridge-ports none\n        \
         bridge-stp off\n        bridge-fd 0\n        post-up echo 1 > /proc/sys/net/ipv4/ip_forward\n",
        br = n.bridge,
        gw = n.gateway,
        len = n.subnet.prefix_len()
    )
}

/// The `pveum` commands creating the roles, the user, the token and its ACLs.
pub fn pveum_commands(cfg: &Config) -> String {
    let (token_id, storage, secret) = match &cfg.pve {
        Some(p) => (
            p.token_id.clone(),
            p.storage.clone(),
            p.token_secret_file.as_ref().map_or_else(
                || "the config's pve.token_secret".to_owned(),
                |f| f.display().to_string(),
            ),
        ),
        None => (
            "agentlab@pve!agentlab".to_owned(),
            "local-lvm".to_owned(),
            super::answers::PVE_SECRET_FILE.to_owned(),
        ),
    };
    let (user, token) = token_id.split_once('!').unwrap_or((&token_id, "agentlab"));
    let t = format!("'{user}!{token}'");
    format!(
        "pveum role add AgentLab -privs \"VM.Allocate VM.Audit VM.Clone VM.PowerMgmt VM.Config.CPU \
         VM.Config.Memory VM.Config.Network VM.Config.Disk VM.Config.Cloudinit VM.Config.Options \
         VM.GuestAgent.Audit VM.GuestAgent.FileWrite\"   # PVE 8.x: VM.Monitor instead of VM.GuestAgent.*\n\
         pveum role add AgentLabStorage -privs \"Datastore.AllocateSpace Datastore.Audit Datastore.Allocate\"\n\
         pveum role add AgentLabNet -privs \"SDN.Use\"\n\
         pveum user add {user}\n\
         pveum user token add {user} {token} --privsep 1   # prints the secret: write it to {secret} (mode 0600)\n\
         pveum acl modify /vms/{TEMPLATE_VMID} -token {t} -role AgentLab\n\
         pveum acl modify /vms -token {t} -role AgentLab\n\
         pveum acl modify /storage/{storage} -token {t} -role AgentLabStorage\n\
         pveum acl modify /sdn/zones/localnetwork/{br} -token {t} -role AgentLabNet\n\
         then rerun agentlab init (its doctor step checks the privileges)",
        br = cfg.network.bridge,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanza_and_commands_use_the_config() {
        let cfg = Config::from_yaml_str(
            "backend: pve\nnetwork:\n  bridge: vmbr7\npve:\n  url: https://p:8006\n  \
             token_id: al@pve!tok\n  token_secret_file: /etc/agentlab/s\n  storage: fast\n",
            "t",
        )
        .unwrap();
        let stanza = bridge_stanza(&cfg);
        assert!(
            stanza.starts_with("auto vmbr7\niface vmbr7 inet static\n"),
            "{stanza}"
        );
        assert!(stanza.contains("address 10.77.0.1/16"), "{stanza}");
        let cmds = pveum_commands(&cfg);
        assert!(
            cmds.contains("pveum user token add al@pve tok --privsep 1"),
            "{cmds}"
        );
        assert!(
            cmds.contains("/storage/fast -token 'al@pve!tok' -role AgentLabStorage"),
            "{cmds}"
        );
        assert!(cmds.contains("/sdn/zones/localnetwork/vmbr7"), "{cmds}");
        assert!(cmds.contains("/etc/agentlab/s"), "{cmds}");
    }
}
