//! Profiles written for the Go original: its spellings whose meaning is the same here are
//! translated before the strict schema reads the document, each with a deprecation warning
//! ([`ProfileWarning`]); keys whose meaning differs stay errors. The mapping is documented in
//! `docs/upgrade-from-go.md`.
//!
//! | Go original | here |
//! | --- | --- |
//! | `behavior.mode: dangerous` | `behavior.mode: yolo` |
//! | `behavior.idle_stop_minutes_default: N` | `behavior.idle_stop_minutes: N` (`0` = absent, never) |
//! | `resources.balloon: false` / `true` | `resources.balloon: 0` / absent (backend default) |
//! | `network.firewall_group: agent_nat_default` / `agent_nat_off` / `agent_nat_allowlist` | `network.mode: nat` / `off` / `allowlist` |
//! | `artifacts.endpoint: URL` | dropped: the daemon tells the runner where to upload |

use std::fmt;

use serde::Serialize;
use serde_yaml::{Mapping, Value};

use crate::yaml::{Document, ErrorDetails, ErrorKind, locate};

/// A Go-original spelling that was accepted and translated; the file should be updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileWarning {
    /// The file (or origin) as given.
    pub file: String,
    /// 1-based document index within the file.
    pub document: usize,
    /// Dotted field path as written, e.g. `behavior.mode`.
    pub field: String,
    /// 1-based line in the file, when found.
    pub line: Option<usize>,
    /// What was translated and how to write it now.
    pub message: String,
}

impl fmt::Display for ProfileWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, document {}, field {}",
            self.file, self.document, self.field
        )?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, ": {} (deprecated)", self.message)
    }
}

/// The Go original's firewall groups and the network mode each enforced.
const FIREWALL_GROUPS: [(&str, &str); 3] = [
    ("agent_nat_default", "nat"),
    ("agent_nat_off", "off"),
    ("agent_nat_allowlist", "allowlist"),
];

/// Translates the Go spellings in one parsed document. Returns the warnings (field, message),
/// or an error naming the field when a Go key contradicts the document.
pub(crate) fn translate(
    value: &mut Value,
    file: &str,
    doc: &Document<'_>,
) -> Result<Vec<ProfileWarning>, Box<ErrorDetails>> {
    let mut notes: Vec<(&'static str, String)> = Vec::new();
    let Some(root) = value.as_mapping_mut() else {
        return Ok(Vec::new());
    };
    if let Some(behavior) = section(root, "behavior") {
        if behavior.get("mode").and_then(Value::as_str) == Some("dangerous") {
            behavior.insert("mode".into(), "yolo".into());
            notes.push((
                "behavior.mode",
                "`dangerous` is the Go original's name for `yolo`; write `mode: yolo`".into(),
            ));
        }
        if let Some(old) = behavior.remove("idle_stop_minutes_default") {
            if behavior.contains_key("idle_stop_minutes") {
                return Err(refuse(
                    file,
                    doc,
                    "behavior.idle_stop_minutes_default",
                    "given together with behavior.idle_stop_minutes; keep only idle_stop_minutes",
                ));
            }
            if old.as_u64() != Some(0) {
                behavior.insert("idle_stop_minutes".into(), old);
            }
            notes.push((
                "behavior.idle_stop_minutes_default",
                "renamed to `behavior.idle_stop_minutes` (leave it out instead of `0` to \
                 never stop an idle sandbox)"
                    .into(),
            ));
        }
    }
    if let Some(resources) = section(root, "resources")
        && resources.contains_key("cpulist")
    {
        return Err(Box::new(ErrorDetails::at_field(
            ErrorKind::Unsupported,
            file,
            doc,
            "resources.cpulist",
            "CPU pinning (the Go original's `cpulist`) is not supported; remove it \
             (`cpulimit` limits CPU time, it does not pin)"
                .to_owned(),
        )));
    }
    if let Some(resources) = section(root, "resources")
        && let Some(on) = resources.get("balloon").and_then(Value::as_bool)
    {
        let now = if on {
            resources.remove("balloon");
            "leave `balloon` out for the backend's default"
        } else {
            resources.insert("balloon".into(), 0u32.into());
            "write `balloon: 0` to disable the balloon device"
        };
        notes.push((
            "resources.balloon",
            format!(
                "a yes/no balloon is the Go original's spelling; {now} (or give a minimum in MiB)"
            ),
        ));
    }
    if let Some(network) = section(root, "network") {
        let group = network
            .get("firewall_group")
            .and_then(Value::as_str)
            .and_then(|g| FIREWALL_GROUPS.iter().find(|(name, _)| *name == g))
            .copied();
        if let Some((name, mode)) = group {
            let given = network
                .get("mode")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(given) = given.filter(|g| g != mode) {
                return Err(refuse(
                    file,
                    doc,
                    "network.firewall_group",
                    &format!("`{name}` means `mode: {mode}`, but the profile says `mode: {given}`"),
                ));
            }
            network.remove("firewall_group");
            network.insert("mode".into(), mode.into());
            notes.push((
                "network.firewall_group",
                format!(
                    "Proxmox firewall groups are not used: AgentLab's own nftables policy \
                     enforces what `{name}` did; write `mode: {mode}` instead"
                ),
            ));
        }
    }
    if let Some(artifacts) = section(root, "artifacts")
        && artifacts.remove("endpoint").is_some()
    {
        notes.push((
            "artifacts.endpoint",
            "ignored: the daemon tells the runner where to upload (its guest listener); \
             remove it"
                .into(),
        ));
    }
    Ok(notes
        .into_iter()
        .map(|(field, message)| ProfileWarning {
            file: file.to_owned(),
            document: doc.index,
            field: field.to_owned(),
            line: locate(doc.text, field).map(|(l, _)| doc.first_line + l - 1),
            message,
        })
        .collect())
}

/// The mapping under `key`, when it is one.
fn section<'v>(root: &'v mut Mapping, key: &str) -> Option<&'v mut Mapping> {
    root.get_mut(key).and_then(Value::as_mapping_mut)
}

fn refuse(file: &str, doc: &Document<'_>, field: &str, reason: &str) -> Box<ErrorDetails> {
    Box::new(ErrorDetails::at_field(
        ErrorKind::Invalid,
        file,
        doc,
        field,
        reason.to_owned(),
    ))
}
