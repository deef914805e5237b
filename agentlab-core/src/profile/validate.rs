//! Semantic validation of a parsed [`Profile`]: ranges, cross-field rules, unsupported keys.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ids::Vmid;
use crate::yaml::ErrorKind;

use super::schema::{InnerSandbox, NetworkMode, Profile, WorkspaceMode};

/// NIC models accepted in `network.model`.
const NIC_MODELS: [&str; 5] = ["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"];

/// One problem found in a profile: the field path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Violation {
    pub kind: ErrorKind,
    pub field: &'static str,
    /// Index into a list field (`network.allowlist[2]`).
    pub index: Option<usize>,
    pub reason: String,
}

impl Violation {
    /// The full field path, including a list index.
    pub fn path(&self) -> String {
        match self.index {
            Some(i) => format!("{}[{i}]", self.field),
            None => self.field.to_owned(),
        }
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> Violation {
    Violation {
        kind: ErrorKind::Invalid,
        field,
        index: None,
        reason: reason.into(),
    }
}

fn check(ok: bool, field: &'static str, reason: impl FnOnce() -> String) -> Result<(), Violation> {
    if ok {
        Ok(())
    } else {
        Err(bad(field, reason()))
    }
}

/// An entry of `network.allowlist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowlistEntry {
    /// A network (a bare address is a /32 or /128).
    Net(IpNet),
    /// A domain name, resolved when the firewall rules are applied.
    Domain(String),
}

/// Parses an allowlist entry: a CIDR, an IP address or a domain name.
pub fn parse_allowlist_entry(entry: &str) -> Option<AllowlistEntry> {
    let entry = entry.trim();
    if let Ok(net) = entry.parse::<IpNet>() {
        return Some(AllowlistEntry::Net(net));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(AllowlistEntry::Net(IpNet::from(ip)));
    }
    let name = entry.strip_suffix('.').unwrap_or(entry);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(label_ok)
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
    valid.then(|| AllowlistEntry::Domain(name.to_ascii_lowercase()))
}

/// `[a-z0-9][a-z0-9-]{0,62}`.
pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn valid_bundle_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_iface(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':')
}

/// Checks everything serde cannot: ranges, cross-field rules and unsupported keys.
pub(super) fn validate(p: &Profile) -> Result<(), Violation> {
    check(valid_name(&p.name), "name", || {
        format!(
            "invalid profile name {:?}: use [a-z0-9][a-z0-9-]{{0,62}}",
            p.name
        )
    })?;
    check(Vmid::new(p.template_vmid).is_ok(), "template_vmid", || {
        format!("must be within {}..={}", Vmid::MIN, Vmid::MAX)
    })?;
    if let Some(node) = &p.node {
        check(
            !node.is_empty()
                && node
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')),
            "node",
            || "must be a node name or \"auto\"".to_owned(),
        )?;
    }
    validate_network(p)?;
    validate_resources(p)?;
    validate_storage(p)?;
    validate_behavior(p)?;
    if let Some(bundle) = &p.secrets_bundle {
        check(valid_bundle_name(bundle), "secrets_bundle", || {
            "must be a bundle name ([A-Za-z0-9][A-Za-z0-9._-]*)".to_owned()
        })?;
    }
    for (i, key) in p.ssh_public_keys.iter().enumerate() {
        crate::ssh_key::validate(key.trim()).map_err(|why| Violation {
            index: Some(i),
            ..bad("ssh_public_keys", why)
        })?;
    }
    super::result::validate_profile(&p.result).map_err(|(field, why)| bad(field, why))?;
    let clone = &p.repo.clone_path;
    check(clone.starts_with('/'), "repo.clone_path", || {
        "must be an absolute path".to_owned()
    })?;
    check(
        !clone.split('/').any(|c| c == ".." || c == "."),
        "repo.clone_path",
        || "must not contain `.` or `..` components".to_owned(),
    )?;
    check(
        p.artifacts.retention_days >= 1,
        "artifacts.retention_days",
        || "must be at least 1".to_owned(),
    )?;
    check(p.artifacts.max_bytes >= 1, "artifacts.max_bytes", || {
        "must be at least 1".to_owned()
    })?;
    match (&p.agent.command, &p.agent.preset) {
        (Some(_), Some(_)) => Err(bad(
            "agent",
            "set exactly one of `command` and `preset`, not both",
        )),
        (None, None) => Err(bad("agent", "set exactly one of `command` and `preset`")),
        (Some(cmd), None) => check(!cmd.trim().is_empty(), "agent.command", || {
            "must not be empty".to_owned()
        }),
        (None, Some(_)) => Ok(()),
    }
}

fn validate_network(p: &Profile) -> Result<(), Violation> {
    let net = &p.network;
    if net.firewall_group.is_some() {
        return Err(Violation {
            kind: ErrorKind::Unsupported,
            ..bad(
                "network.firewall_group",
                "not supported yet: sandbox isolation is enforced by AgentLab's own nftables \
                 table, not by Proxmox firewall groups; remove this key",
            )
        });
    }
    check(valid_iface(&net.bridge), "network.bridge", || {
        "must be an interface name of 1 to 15 characters".to_owned()
    })?;
    check(
        NIC_MODELS.contains(&net.model.as_str()),
        "network.model",
        || {
            format!(
                "unsupported NIC model {:?}; use one of: {}",
                net.model,
                NIC_MODELS.join(", ")
            )
        },
    )?;
    match net.mode {
        NetworkMode::Allowlist => check(!net.allowlist.is_empty(), "network.allowlist", || {
            "must list at least one CIDR or domain when mode is allowlist".to_owned()
        })?,
        NetworkMode::Nat | NetworkMode::Off => {
            check(net.allowlist.is_empty(), "network.allowlist", || {
                format!("is only used with mode: allowlist (mode is {})", net.mode)
            })?;
        }
    }
    for (i, entry) in net.allowlist.iter().enumerate() {
        if parse_allowlist_entry(entry).is_none() {
            return Err(Violation {
                index: Some(i),
                ..bad(
                    "network.allowlist",
                    format!("{entry:?} is not a CIDR, IP address or domain name"),
                )
            });
        }
    }
    Ok(())
}

fn validate_resources(p: &Profile) -> Result<(), Violation> {
    let r = &p.resources;
    check(r.cores >= 1, "resources.cores", || {
        "must be at least 1".to_owned()
    })?;
    check(r.memory_mb >= 128, "resources.memory_mb", || {
        "must be at least 128".to_owned()
    })?;
    if let Some(limit) = r.cpulimit {
        check(
            limit > 0.0 && limit <= f64::from(r.cores),
            "resources.cpulimit",
            || format!("must be greater than 0 and at most cores ({})", r.cores),
        )?;
    }
    if let Some(balloon) = r.balloon {
        check(balloon <= r.memory_mb, "resources.balloon", || {
            format!("must be at most memory_mb ({})", r.memory_mb)
        })?;
    }
    Ok(())
}

fn validate_storage(p: &Profile) -> Result<(), Violation> {
    let s = &p.storage;
    if let Some(size) = s.root_size_gb {
        check(size >= 1, "storage.root_size_gb", || {
            "must be at least 1".to_owned()
        })?;
    }
    match (s.workspace, s.workspace_size_gb) {
        (WorkspaceMode::Attach, None) => Err(bad(
            "storage.workspace_size_gb",
            "is required when workspace is attach",
        )),
        (WorkspaceMode::Attach, Some(size)) => {
            check(size >= 1, "storage.workspace_size_gb", || {
                "must be at least 1".to_owned()
            })
        }
        (WorkspaceMode::None, Some(_)) => Err(bad(
            "storage.workspace_size_gb",
            "is only used with workspace: attach",
        )),
        (WorkspaceMode::None, None) => Ok(()),
    }
}

fn validate_behavior(p: &Profile) -> Result<(), Violation> {
    let b = &p.behavior;
    let ttl = b.ttl_minutes_default;
    check(ttl >= 1, "behavior.ttl_minutes_default", || {
        "must be at least 1".to_owned()
    })?;
    if let Some(t) = b.job_timeout_minutes {
        check(t >= 1 && t < ttl, "behavior.job_timeout_minutes", || {
            format!("must be at least 1 and less than ttl_minutes_default ({ttl})")
        })?;
    }
    if let Some(idle) = b.idle_stop_minutes {
        check(idle >= 1, "behavior.idle_stop_minutes", || {
            "must be at least 1".to_owned()
        })?;
    }
    check(
        (1..=100).contains(&b.idle_cpu_percent),
        "behavior.idle_cpu_percent",
        || "must be within 1..=100".to_owned(),
    )?;
    if b.inner_sandbox == InnerSandbox::None {
        check(
            b.inner_sandbox_args.is_empty(),
            "behavior.inner_sandbox_args",
            || "is only used with inner_sandbox: bubblewrap".to_owned(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_entries() {
        assert!(matches!(
            parse_allowlist_entry("10.0.0.0/8"),
            Some(AllowlistEntry::Net(_))
        ));
        assert!(matches!(
            parse_allowlist_entry("2001:db8::1"),
            Some(AllowlistEntry::Net(_))
        ));
        assert_eq!(
            parse_allowlist_entry("API.GitHub.com."),
            Some(AllowlistEntry::Domain("api.github.com".into()))
        );
        for bad in [
            "",
            "*.github.com",
            "10.0.0.0/33",
            "1.2.3.400",
            "-a.com",
            "a b.com",
            "http://x.com",
        ] {
            assert_eq!(parse_allowlist_entry(bad), None, "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(valid_name("yolo-ephemeral"));
        assert!(valid_name("0"));
        assert!(!valid_name("-a"));
        assert!(!valid_name("Yolo"));
        assert!(!valid_name(&"a".repeat(64)));
        assert!(valid_name(&"a".repeat(63)));
    }
}
