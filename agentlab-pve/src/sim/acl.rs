//! Privilege checks the way the PVE handlers do them for the calls AgentLab uses: the token's
//! grant ([`super::SimConfig::permissions`], with propagation) must hold the privilege on the
//! object's ACL path, else 403 `Permission check failed (<path>, <privilege>)`.

use super::server::{ApiErr, Ctx, SimInner};
use crate::privileges::has_privilege;

fn config_privilege(key: &str) -> &'static str {
    let base = key.trim_end_matches(|c: char| c.is_ascii_digit());
    match base {
        "cores" | "sockets" | "cpulimit" | "cpu" | "vcpus" => "VM.Config.CPU",
        "memory" | "balloon" => "VM.Config.Memory",
        "net" => "VM.Config.Network",
        "ipconfig" | "ciuser" | "sshkeys" | "cicustom" | "ciupgrade" | "cipassword" | "citype"
        | "nameserver" | "searchdomain" => "VM.Config.Cloudinit",
        "scsi" | "virtio" | "sata" | "ide" | "unused" | "efidisk" | "tpmstate" => "VM.Config.Disk",
        "smbios" => "VM.Config.HWType",
        _ => "VM.Config.Options",
    }
}

/// The (ACL path, privilege) pairs a request needs.
fn needs(method: &str, template: &str, ctx: &Ctx) -> Vec<(String, &'static str)> {
    let vm = format!("/vms/{}", ctx.req("vmid"));
    let store = format!("/storage/{}", ctx.req("storage"));
    let rest = template.strip_prefix("/nodes/{node}/qemu/{vmid}");
    match (method, rest) {
        ("POST", Some("/clone")) => vec![
            (vm, "VM.Clone"),
            (format!("/vms/{}", ctx.req("newid")), "VM.Allocate"),
        ],
        ("PUT" | "POST", Some("/config")) => {
            let mut out: Vec<(String, &'static str)> = ctx
                .params
                .keys()
                .filter(|k| {
                    !matches!(
                        k.as_str(),
                        "node" | "vmid" | "digest" | "delete" | "skiplock" | "background_delay"
                    )
                })
                .map(|k| (vm.clone(), config_privilege(k)))
                .collect();
            for key in ctx
                .get("delete")
                .unwrap_or_default()
                .split([',', ';', ' '])
                .filter(|s| !s.is_empty())
            {
                out.push((vm.clone(), config_privilege(key)));
            }
            out
        }
        ("PUT", Some("/resize")) => vec![(vm, "VM.Config.Disk")],
        ("POST", Some("/status/start" | "/status/stop" | "/status/shutdown")) => {
            vec![(vm, "VM.PowerMgmt")]
        }
        ("DELETE", Some("")) => vec![(vm, "VM.Allocate")],
        ("GET", Some("/config" | "/status/current")) => vec![(vm, "VM.Audit")],
        ("POST", Some("/agent/file-write")) => vec![(vm, "VM.GuestAgent.FileWrite")],
        ("POST", Some("/agent/exec")) | ("GET", Some("/agent/exec-status")) => {
            vec![(vm, "VM.GuestAgent.Unrestricted")]
        }
        ("POST" | "GET", Some(r)) if r.starts_with("/agent/") => vec![(vm, "VM.GuestAgent.Audit")],
        ("POST", None) if template.ends_with("/storage/{storage}/content") => {
            vec![(store, "Datastore.AllocateSpace")]
        }
        ("DELETE", None) if template.ends_with("/content/{volume}") => {
            vec![(store, "Datastore.Allocate")]
        }
        _ => Vec::new(),
    }
}

/// 403 unless the token holds every privilege the request needs.
pub fn check(inner: &SimInner, method: &str, template: &str, ctx: &Ctx) -> Result<(), ApiErr> {
    for (path, privilege) in needs(method, template, ctx) {
        if !has_privilege(&inner.config.permissions, &path, privilege) {
            return Err(ApiErr {
                status: 403,
                message: format!("Permission check failed ({path}, {privilege})"),
                errors: None,
            });
        }
    }
    Ok(())
}
