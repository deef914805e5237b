//! Semantic validation of a parsed [`Config`]: paths, ranges and cross-field rules.

use std::path::Path;

use crate::ids::Vmid;
use crate::yaml::ErrorKind;

use super::backends::{BootstrapDelivery, PveConfig};
use super::schema::{BackendKind, Config};

/// One problem: the field path and why (never containing a secret value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Violation {
    pub kind: ErrorKind,
    pub field: &'static str,
    pub reason: String,
}

fn check(ok: bool, field: &'static str, reason: impl FnOnce() -> String) -> Result<(), Violation> {
    if ok {
        Ok(())
    } else {
        Err(Violation {
            kind: ErrorKind::Invalid,
            field,
            reason: reason(),
        })
    }
}

fn absolute(path: &Path, field: &'static str) -> Result<(), Violation> {
    check(path.is_absolute(), field, || {
        "must be an absolute path".to_owned()
    })
}

fn absolute_opt(path: Option<&Path>, field: &'static str) -> Result<(), Violation> {
    path.map_or(Ok(()), |p| absolute(p, field))
}

fn iface(name: &str, field: &'static str) -> Result<(), Violation> {
    let ok = (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    check(ok, field, || {
        "must be an interface name of 1 to 15 characters".to_owned()
    })
}

fn at_least_one(value: u64, field: &'static str) -> Result<(), Violation> {
    check(value >= 1, field, || "must be at least 1".to_owned())
}

fn at_least_one_opt(value: Option<u64>, field: &'static str) -> Result<(), Violation> {
    value.map_or(Ok(()), |v| at_least_one(v, field))
}

fn validate_quotas(q: &super::quotas::QuotasConfig) -> Result<(), Violation> {
    at_least_one_opt(q.max_sandboxes, "quotas.max_sandboxes")?;
    for (profile, n) in &q.max_sandboxes_per_profile {
        check(*n >= 1, "quotas.max_sandboxes_per_profile", || {
            format!("{profile}: must be at least 1")
        })?;
    }
    at_least_one_opt(
        q.max_artifact_bytes_per_job,
        "quotas.max_artifact_bytes_per_job",
    )?;
    at_least_one_opt(
        q.max_artifact_bytes_total,
        "quotas.max_artifact_bytes_total",
    )?;
    check(
        q.disk_warn_percent.is_none_or(|p| (1..=100).contains(&p)),
        "quotas.disk_warn_percent",
        || "must be within 1..=100".to_owned(),
    )?;
    at_least_one(
        q.disk_check_interval_secs,
        "quotas.disk_check_interval_secs",
    )
}

/// Checks everything serde cannot.
pub(super) fn validate(c: &Config) -> Result<(), Violation> {
    absolute(&c.socket, "socket")?;
    if let Some(group) = &c.socket_group {
        check(!group.trim().is_empty(), "socket_group", || {
            "must not be empty".to_owned()
        })?;
    }
    absolute(&c.data_dir, "data_dir")?;
    absolute_opt(c.db_path.as_deref(), "db_path")?;
    absolute_opt(c.artifact_dir.as_deref(), "artifact_dir")?;
    absolute(&c.profiles_dir, "profiles_dir")?;
    super::remote::validate_remote(&c.remote)?;
    for (i, key) in c.ssh_public_keys.iter().enumerate() {
        crate::ssh_key::validate(key.trim()).map_err(|why| Violation {
            kind: ErrorKind::Invalid,
            field: "ssh_public_keys",
            reason: format!("entry {i}: {why}"),
        })?;
    }

    let g = &c.guest;
    if let Some(url) = &g.controller_url {
        check(
            url.starts_with("http://") || url.starts_with("https://"),
            "guest.controller_url",
            || "must start with http:// or https://".to_owned(),
        )?;
    }
    at_least_one(g.token_ttl_secs, "guest.token_ttl_secs")?;
    at_least_one(
        g.fetch_rate_per_minute.into(),
        "guest.fetch_rate_per_minute",
    )?;
    at_least_one(g.max_body_bytes, "guest.max_body_bytes")?;
    at_least_one(g.artifact_max_bytes, "guest.artifact_max_bytes")?;
    at_least_one(g.idle_timeout_secs, "guest.idle_timeout_secs")?;

    let r = c.vmid_range;
    let in_range = |v: u32| Vmid::new(v).is_ok();
    check(in_range(r.start), "vmid_range.start", || {
        format!("must be within {}..={}", Vmid::MIN, Vmid::MAX)
    })?;
    check(in_range(r.end), "vmid_range.end", || {
        format!("must be within {}..={}", Vmid::MIN, Vmid::MAX)
    })?;
    check(r.start <= r.end, "vmid_range.end", || {
        format!("must not be below vmid_range.start ({})", r.start)
    })?;

    validate_network(c)?;

    match (&c.pve, c.backend) {
        (None, BackendKind::Pve) => {
            return Err(Violation {
                kind: ErrorKind::MissingField,
                field: "pve",
                reason: "is required when backend is pve".to_owned(),
            });
        }
        (Some(pve), _) => validate_pve(pve)?,
        (None, _) => {}
    }

    absolute_opt(c.local.rootfs.as_deref(), "local.rootfs")?;
    absolute_opt(c.local.runner_path.as_deref(), "local.runner_path")?;
    iface(&c.local.bridge, "local.bridge")?;
    check(c.local.uid_base >= 65_536, "local.uid_base", || {
        "must be at least 65536 (above the host's own users)".to_owned()
    })?;
    at_least_one(c.local.uid_slots.into(), "local.uid_slots")?;
    let end = u64::from(c.local.uid_base) + u64::from(c.local.uid_slots) * 65_536;
    check(end <= 1 << 31, "local.uid_slots", || {
        format!("uid_base + uid_slots * 65536 = {end} exceeds 2147483648")
    })?;
    absolute_opt(Some(c.qemu.image.as_path()), "qemu.image")?;
    at_least_one(c.qemu.boot_timeout_secs, "qemu.boot_timeout_secs")?;
    if let Some(cmd) = &c.fake.boot_command {
        check(
            cmd.first().is_some_and(|p| !p.trim().is_empty()),
            "fake.boot_command",
            || "must name a program as its first element".to_owned(),
        )?;
    }
    absolute_opt(c.fake.runner_path.as_deref(), "fake.runner_path")?;
    absolute_opt(c.fake.work_dir.as_deref(), "fake.work_dir")?;

    absolute(&c.secrets.dir, "secrets.dir")?;
    absolute(&c.secrets.identity, "secrets.identity")?;
    at_least_one(
        c.retention.job_log_max_lines.into(),
        "retention.job_log_max_lines",
    )?;
    at_least_one(c.retention.gc_interval_secs, "retention.gc_interval_secs")?;
    at_least_one_opt(
        c.retention.events_days.map(u64::from),
        "retention.events_days",
    )?;
    at_least_one_opt(c.retention.jobs_days.map(u64::from), "retention.jobs_days")?;
    validate_quotas(&c.quotas)?;
    super::limits::validate_limits(&c.limits)?;
    let level = &c.log.level;
    check(
        !level.is_empty() && !level.contains(char::is_whitespace),
        "log.level",
        || "must be a tracing filter such as `info` or `info,agentlab=debug`".to_owned(),
    )
}

fn validate_network(c: &Config) -> Result<(), Violation> {
    let n = &c.network;
    iface(&n.bridge, "network.bridge")?;
    if let Some(uplink) = &n.uplink {
        iface(uplink, "network.uplink")?;
    }
    if let Some(tailnet) = &n.tailnet_iface {
        iface(tailnet, "network.tailnet_iface")?;
    }
    check(
        !n.tailnet_ssh || n.tailnet_iface.is_some(),
        "network.tailnet_ssh",
        || "needs network.tailnet_iface".to_owned(),
    )?;
    check(n.subnet6.is_none(), "network.subnet6", || {
        "is not supported: sandboxes get no IPv6 address (only link-local neighbour discovery \
         passes the bridge), so an IPv6 subnet would promise dual stack that is not delivered; \
         remove the key"
            .to_owned()
    })?;
    check(
        !n.table.is_empty()
            && n.table.len() <= 32
            && n.table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "network.table",
        || "must be 1 to 32 characters of [A-Za-z0-9_]".to_owned(),
    )?;
    let subnet = n.subnet.trunc();
    check(subnet == n.subnet, "network.subnet", || {
        format!("must be a network address, e.g. {subnet}")
    })?;
    check(n.subnet.prefix_len() <= 30, "network.subnet", || {
        "must be /30 or larger".to_owned()
    })?;
    let gw = n.gateway;
    check(
        n.subnet.contains(&gw) && gw != n.subnet.network() && gw != n.subnet.broadcast(),
        "network.gateway",
        || {
            format!(
                "must be a host address inside network.subnet ({})",
                n.subnet
            )
        },
    )?;
    // Sandbox addresses are network + 2 + (vmid - start): the block must end before the
    // broadcast address and must not contain the gateway.
    let room = (1u64 << (32 - u32::from(n.subnet.prefix_len()))) - 3;
    check(c.vmid_range.len() <= room, "vmid_range", || {
        format!(
            "has {} ids but network.subnet {} has room for {room} sandboxes (addresses from \
             the network address + 2); shrink the range or widen the subnet",
            c.vmid_range.len(),
            n.subnet,
        )
    })?;
    let first = u64::from(u32::from(n.subnet.network())) + 2;
    let last = first + c.vmid_range.len() - 1;
    let gw64 = u64::from(u32::from(gw));
    check(!(first..=last).contains(&gw64), "network.gateway", || {
        format!(
            "collides with sandbox addresses (network address + 2 onwards, one per id of \
             vmid_range); use the subnet's first address, {}",
            std::net::Ipv4Addr::from(u32::from(n.subnet.network()) + 1)
        )
    })
}

fn validate_pve(p: &PveConfig) -> Result<(), Violation> {
    check(
        p.url.starts_with("https://") || p.url.starts_with("http://"),
        "pve.url",
        || "must start with https:// (or http:// for a test server)".to_owned(),
    )?;
    check(!p.node.trim().is_empty(), "pve.node", || {
        "must be a node name or `auto`".to_owned()
    })?;
    let token_ok = p.token_id.split_once('@').is_some_and(|(user, rest)| {
        !user.is_empty()
            && rest
                .split_once('!')
                .is_some_and(|(realm, id)| !realm.is_empty() && !id.is_empty())
    });
    check(token_ok, "pve.token_id", || {
        "must look like USER@REALM!TOKENID".to_owned()
    })?;
    match (&p.token_secret, &p.token_secret_file) {
        (Some(_), Some(_)) => {
            return Err(Violation {
                kind: ErrorKind::Invalid,
                field: "pve.token_secret",
                reason: "set only one of token_secret and token_secret_file".to_owned(),
            });
        }
        (None, None) => {
            return Err(Violation {
                kind: ErrorKind::MissingField,
                field: "pve",
                reason: "set token_secret_file (or token_secret)".to_owned(),
            });
        }
        (Some(secret), None) => check(!secret.expose().is_empty(), "pve.token_secret", || {
            "must not be empty".to_owned()
        })?,
        (None, Some(file)) => absolute(file, "pve.token_secret_file")?,
    }
    absolute_opt(p.ca_file.as_deref(), "pve.ca_file")?;
    if let Some(fp) = &p.fingerprint {
        let hex: String = fp.chars().filter(|c| *c != ':').collect();
        check(
            hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
            "pve.fingerprint",
            || "must be a SHA-256 fingerprint (64 hex digits, colons allowed)".to_owned(),
        )?;
    }
    check(
        !(p.insecure && (p.ca_file.is_some() || p.fingerprint.is_some())),
        "pve.insecure",
        || "cannot be combined with ca_file or fingerprint".to_owned(),
    )?;
    check(!p.storage.trim().is_empty(), "pve.storage", || {
        "must not be empty".to_owned()
    })?;
    check(
        p.bootstrap != BootstrapDelivery::Snippet || p.snippets_storage.is_some(),
        "pve.snippets_storage",
        || "is required when bootstrap is snippet".to_owned(),
    )?;
    check(
        p.max_concurrent_clones >= 1,
        "pve.max_concurrent_clones",
        || "must be at least 1".to_owned(),
    )?;
    check(
        p.max_clones_per_node >= 1,
        "pve.max_clones_per_node",
        || "must be at least 1".to_owned(),
    )
}
