//! The minimal PVE privilege set AgentLab's token needs, per ACL path, and a checker for the
//! map `GET /access/permissions` returns (`{path: {privilege: 1 (propagate) | 0}}`).

use std::collections::BTreeMap;

/// Privileges needed on one ACL path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// ACL path (`/vms/9000`, `/storage/local-lvm`, …).
    pub path: String,
    /// Privilege names.
    pub privileges: Vec<&'static str>,
    /// Why AgentLab needs them.
    pub why: &'static str,
}

/// What the requirements depend on.
#[derive(Debug, Clone)]
pub struct PrivilegeContext<'a> {
    /// Template VM id.
    pub template_vmid: u32,
    /// VM storage.
    pub storage: &'a str,
    /// Agent bridge, if known.
    pub bridge: Option<&'a str>,
    /// Pool new VMs go into, if any (`/pool/<pool>`), else `/vms`.
    pub pool: Option<&'a str>,
    /// Workspace-volume holder VM id.
    pub holder_vmid: u32,
    /// PVE major version (guest-agent privileges changed in 9.0).
    pub major: u32,
    /// Bootstrap through the guest agent's file-write.
    pub guest_agent_bootstrap: bool,
}

/// The minimal set, per path.
pub fn requirements(ctx: &PrivilegeContext<'_>) -> Vec<Requirement> {
    let mut vm_privs = vec![
        "VM.Allocate",
        "VM.Audit",
        "VM.PowerMgmt",
        "VM.Config.CPU",
        "VM.Config.Memory",
        "VM.Config.Network",
        "VM.Config.Disk",
        "VM.Config.Cloudinit",
        "VM.Config.Options",
    ];
    if ctx.major >= 9 {
        vm_privs.push("VM.GuestAgent.Audit");
        if ctx.guest_agent_bootstrap {
            vm_privs.push("VM.GuestAgent.FileWrite");
        }
    } else {
        vm_privs.push("VM.Monitor");
    }
    let sandbox_path = ctx
        .pool
        .map_or_else(|| "/vms".to_owned(), |p| format!("/pool/{p}"));
    let mut out = vec![
        Requirement {
            path: format!("/vms/{}", ctx.template_vmid),
            privileges: vec!["VM.Clone", "VM.Audit"],
            why: "clone the template and read its config",
        },
        Requirement {
            path: sandbox_path,
            privileges: vm_privs,
            why: "sandbox lifecycle, config, guest agent",
        },
        Requirement {
            path: format!("/storage/{}", ctx.storage),
            privileges: vec![
                "Datastore.AllocateSpace",
                "Datastore.Audit",
                "Datastore.Allocate",
            ],
            why: "clone disks, allocate and free workspace volumes",
        },
        Requirement {
            path: format!("/vms/{}", ctx.holder_vmid),
            privileges: vec!["VM.Config.Disk"],
            why: "attach workspace volumes owned by the holder id",
        },
    ];
    if let (Some(bridge), true) = (ctx.bridge, ctx.major >= 8) {
        out.push(Requirement {
            path: format!("/sdn/zones/localnetwork/{bridge}"),
            privileges: vec!["SDN.Use"],
            why: "put net0 on the agent bridge",
        });
    }
    out
}

/// Whether `privilege` is effective on `path` given the permissions map (an entry on the path
/// itself, or on an ancestor with propagation).
pub fn has_privilege(
    map: &BTreeMap<String, BTreeMap<String, u8>>,
    path: &str,
    privilege: &str,
) -> bool {
    if map.get(path).is_some_and(|p| p.contains_key(privilege)) {
        return true;
    }
    let mut cur = path.to_owned();
    while let Some((parent, _)) = cur.rsplit_once('/') {
        let parent = if parent.is_empty() { "/" } else { parent };
        if map.get(parent).and_then(|p| p.get(privilege)) == Some(&1) {
            return true;
        }
        if parent == "/" {
            break;
        }
        cur = parent.to_owned();
    }
    false
}

/// Missing privileges (`path: priv`) for the requirements.
pub fn missing(map: &BTreeMap<String, BTreeMap<String, u8>>, reqs: &[Requirement]) -> Vec<String> {
    reqs.iter()
        .flat_map(|r| {
            r.privileges
                .iter()
                .filter(|p| !has_privilege(map, &r.path, p))
                .map(move |p| format!("{} {p}", r.path))
        })
        .collect()
}

/// A grant covering every requirement (propagated on `/vms`, `/storage`, `/sdn/zones`).
pub fn full_grant() -> BTreeMap<String, BTreeMap<String, u8>> {
    let vm = [
        "VM.Allocate",
        "VM.Audit",
        "VM.Clone",
        "VM.PowerMgmt",
        "VM.Config.CPU",
        "VM.Config.Memory",
        "VM.Config.Network",
        "VM.Config.Disk",
        "VM.Config.Cloudinit",
        "VM.Config.Options",
        "VM.GuestAgent.Audit",
        "VM.GuestAgent.FileWrite",
        "VM.Monitor",
    ];
    let ds = [
        "Datastore.AllocateSpace",
        "Datastore.Audit",
        "Datastore.Allocate",
    ];
    let grant = |privs: &[&str]| {
        privs
            .iter()
            .map(|p| ((*p).to_owned(), 1u8))
            .collect::<BTreeMap<_, _>>()
    };
    BTreeMap::from([
        ("/vms".to_owned(), grant(&vm)),
        ("/storage".to_owned(), grant(&ds)),
        ("/sdn/zones".to_owned(), grant(&["SDN.Use"])),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(major: u32) -> PrivilegeContext<'static> {
        PrivilegeContext {
            template_vmid: 9000,
            storage: "local-lvm",
            bridge: Some("vmbr1"),
            pool: None,
            holder_vmid: 999_999_000,
            major,
            guest_agent_bootstrap: true,
        }
    }

    #[test]
    fn version_specific_agent_privileges() {
        let v9 = requirements(&ctx(9));
        let v8 = requirements(&ctx(8));
        let all = |r: &[Requirement]| {
            r.iter()
                .flat_map(|r| r.privileges.clone())
                .collect::<Vec<_>>()
        };
        assert!(all(&v9).contains(&"VM.GuestAgent.FileWrite") && !all(&v9).contains(&"VM.Monitor"));
        assert!(all(&v8).contains(&"VM.Monitor") && !all(&v8).contains(&"VM.GuestAgent.Audit"));
        assert!(v9.iter().any(|r| r.path == "/sdn/zones/localnetwork/vmbr1"));
    }

    #[test]
    fn propagation_from_ancestors() {
        assert!(missing(&full_grant(), &requirements(&ctx(9))).is_empty());
        let mut map = BTreeMap::new();
        map.insert(
            "/vms".to_owned(),
            BTreeMap::from([("VM.Audit".to_owned(), 0u8)]),
        );
        assert!(has_privilege(&map, "/vms", "VM.Audit"));
        assert!(
            !has_privilege(&map, "/vms/100", "VM.Audit"),
            "not propagated"
        );
        map.insert(
            "/".to_owned(),
            BTreeMap::from([("VM.Clone".to_owned(), 1u8)]),
        );
        assert!(has_privilege(&map, "/vms/9000", "VM.Clone"));
        let gaps = missing(&map, &requirements(&ctx(9)));
        assert!(
            gaps.contains(&"/storage/local-lvm Datastore.Allocate".to_owned()),
            "{gaps:?}"
        );
    }
}
