//! `agentlab doctor` for the PVE backend: reachability and version, the template (a template,
//! guest agent, cloud-init drive), storage content types, bridge, snippets directory, the
//! token's privileges (`/access/permissions`) against the documented minimal set, and per
//! node its health, capacity and whether placement can use it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::client::{Api, Params, lenient_u64};
use crate::doctor_nodes::{check_bridge, check_nodes};
use crate::options::{BootstrapDelivery, PveOptions};
use crate::privileges::{PrivilegeContext, missing, requirements};

/// One doctor check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Short name (`api`, `template`, …).
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it (failed checks).
    pub fix: Option<String>,
}

pub(crate) fn pass(name: &str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        fix: None,
    }
}

pub(crate) fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn content_of(list: &Value, storage: &str) -> Option<Vec<String>> {
    list.as_array()?
        .iter()
        .find(|s| s.get("storage").and_then(Value::as_str) == Some(storage))
        .map(|s| {
            s.get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .split(',')
                .map(str::to_owned)
                .collect()
        })
}

/// Runs every check; never fails as a whole (failures are results).
pub async fn doctor(opts: &PveOptions, template_vmid: u32) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let api = match Api::new(opts) {
        Ok(a) => a,
        Err(e) => {
            return vec![fail(
                "api",
                e.to_string(),
                "fix url/token/tls in the pve section of the config",
            )];
        }
    };
    let version = match api.get("/version", &Params::new()).await {
        Ok(v) => v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Err(e) => {
            let fix = "check url, network path to port 8006, TLS trust (ca_file/fingerprint) and the API token";
            return vec![fail("api", e.to_string(), fix)];
        }
    };
    out.push(pass(
        "api",
        format!("{} reachable, PVE {version}", opts.url),
    ));
    let major: u32 = version
        .split(['.', '-'])
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    out.push(if major >= 8 {
        pass("version", format!("PVE {version} is supported"))
    } else {
        fail(
            "version",
            format!("PVE {version} is too old"),
            "upgrade to Proxmox VE 8.x or 9.x",
        )
    });
    let resources = api
        .get("/cluster/resources", &vec![("type", "vm".to_owned())])
        .await
        .unwrap_or(Value::Null);
    let node = resources
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v.get("vmid").and_then(lenient_u64) == Some(u64::from(template_vmid)))
        .and_then(|v| v.get("node").and_then(Value::as_str).map(str::to_owned));
    let guest_agent = opts.bootstrap == BootstrapDelivery::GuestAgent;
    match &node {
        None => out.push(fail(
            "template",
            format!("VM {template_vmid} not found (or not visible to the token)"),
            "create the template or grant VM.Audit on it",
        )),
        Some(node) => match api
            .get(
                &format!("/nodes/{node}/qemu/{template_vmid}/config"),
                &Params::new(),
            )
            .await
        {
            Err(e) => out.push(fail(
                "template",
                e.to_string(),
                "grant VM.Audit on the template",
            )),
            Ok(cfg) => {
                let is_template = cfg.get("template").and_then(lenient_u64) == Some(1);
                out.push(if is_template {
                    pass(
                        "template",
                        format!("VM {template_vmid} on {node} is a template"),
                    )
                } else {
                    fail(
                        "template",
                        format!("VM {template_vmid} is not a template"),
                        format!("qm template {template_vmid}"),
                    )
                });
                let agent = cfg.get("agent").map(|a| a.to_string()).is_some_and(|a| {
                    a.trim_matches('"').starts_with('1') || a.contains("enabled=1")
                });
                out.push(match (agent, guest_agent) {
                    (true, _) => pass("template.agent", "QEMU guest agent enabled"),
                    (false, false) => pass("template.agent", "guest agent off (bootstrap: snippet)"),
                    (false, true) => fail("template.agent", "QEMU guest agent not enabled", format!("qm set {template_vmid} --agent enabled=1 (and install qemu-guest-agent in the image)")),
                });
                let has_ci = cfg
                    .as_object()
                    .into_iter()
                    .flatten()
                    .any(|(_, v)| v.as_str().is_some_and(|s| s.contains("cloudinit")));
                out.push(if has_ci {
                    pass("template.cloudinit", "cloud-init drive present")
                } else {
                    fail(
                        "template.cloudinit",
                        "no cloud-init drive",
                        format!("qm set {template_vmid} --ide2 {}:cloudinit", opts.storage),
                    )
                });
                out.extend(
                    crate::template_doctor::checks(&api, opts, template_vmid, node, &cfg).await,
                );
            }
        },
    }
    let node = node.unwrap_or_else(|| {
        if opts.node == "auto" {
            String::new()
        } else {
            opts.node.clone()
        }
    });
    if !node.is_empty() {
        let storages = api
            .get(&format!("/nodes/{node}/storage"), &Params::new())
            .await
            .unwrap_or(Value::Null);
        out.push(match content_of(&storages, &opts.storage) {
            Some(c) if c.iter().any(|x| x == "images") => pass(
                "storage",
                format!("{} has content {}", opts.storage, c.join(",")),
            ),
            Some(c) => fail(
                "storage",
                format!("{} has content {} (no images)", opts.storage, c.join(",")),
                format!("pvesm set {} --content images,…", opts.storage),
            ),
            None => fail(
                "storage",
                format!("storage {} not found on {node}", opts.storage),
                "configure the storage or grant Datastore.Audit on it",
            ),
        });
        if opts.bootstrap == BootstrapDelivery::Snippet {
            out.push(check_snippets(opts, &storages));
        }
        if let Some(bridge) = &opts.bridge {
            out.push(check_bridge(&api, &node, bridge).await);
        }
    }
    out.extend(check_nodes(&api, opts, template_vmid).await);
    out.push(check_privileges(&api, opts, template_vmid, major).await);
    out
}

fn check_snippets(opts: &PveOptions, storages: &Value) -> CheckResult {
    let Some(store) = &opts.snippets_storage else {
        return fail(
            "snippets",
            "bootstrap: snippet without snippets_storage",
            "set pve.snippets_storage (e.g. local)",
        );
    };
    match content_of(storages, store) {
        Some(c) if c.iter().any(|x| x == "snippets") => {}
        _ => {
            return fail(
                "snippets",
                format!("{store} has no snippets content"),
                format!("pvesm set {store} --content <existing>,snippets"),
            );
        }
    }
    match &opts.snippets_dir {
        Some(d) if d.is_dir() => pass(
            "snippets",
            format!("{store} has snippets, {} exists", d.display()),
        ),
        Some(d) => fail(
            "snippets",
            format!("{} does not exist", d.display()),
            format!("mkdir -p {}", d.display()),
        ),
        None => fail(
            "snippets",
            "snippets_dir not set",
            "set pve.snippets_dir (e.g. /var/lib/vz/snippets)",
        ),
    }
}

async fn check_privileges(
    api: &Api,
    opts: &PveOptions,
    template_vmid: u32,
    major: u32,
) -> CheckResult {
    let perms = match api.get("/access/permissions", &Params::new()).await {
        Ok(p) => p,
        Err(e) => {
            return fail(
                "privileges",
                e.to_string(),
                "the token cannot read its permissions",
            );
        }
    };
    let map: BTreeMap<String, BTreeMap<String, u8>> = perms
        .as_object()
        .into_iter()
        .flatten()
        .map(|(path, privs)| {
            let privs = privs
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        u8::try_from(lenient_u64(v).unwrap_or(0)).unwrap_or(0),
                    )
                })
                .collect();
            (path.clone(), privs)
        })
        .collect();
    let ctx = PrivilegeContext {
        template_vmid,
        storage: &opts.storage,
        bridge: opts.bridge.as_deref(),
        pool: opts.pool.as_deref(),
        holder_vmid: opts.volume_holder_vmid,
        major,
        guest_agent_bootstrap: opts.bootstrap == BootstrapDelivery::GuestAgent,
    };
    let lacking = missing(&map, &requirements(&ctx));
    if lacking.is_empty() {
        pass("privileges", "token has the minimal AgentLab privilege set")
    } else {
        fail(
            "privileges",
            format!("missing: {}", lacking.join(", ")),
            "grant the AgentLab role as documented in docs/proxmox.md (pveum acl modify …)",
        )
    }
}
