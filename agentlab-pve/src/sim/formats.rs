//! Named string formats (hard-coded from pve-common `JSONSchema.pm`, they are not in the schema
//! file) and inline property-string formats (`net[n]`, `scsi[n]`, …).
//!
//! Property strings are parsed like `PVE::JSONSchema::parse_property_string`: comma-separated
//! `key=value` parts, a bare part assigns the `default_key`, `alias` keys are renamed, and
//! `keyAlias` keys (`virtio=<mac>`) set two keys at once. Every sub-value is then checked with
//! [`super::validate::check_value`]. Named formats not listed here are accepted unchecked.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::validate::{cached_regex, check_value, is_optional};

fn re(pattern: &str, v: &str) -> bool {
    cached_regex(pattern).is_some_and(|r| r.is_match(v))
}

const STORAGE_ID: &str = r"^[a-z][a-z0-9\-_.]*[a-z0-9]$";
const CONTENT_TYPES: [&str; 7] = [
    "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
];

/// Checks a named format; the error is the text after `invalid format - `.
pub fn check_named(name: &str, v: &str) -> Result<(), String> {
    let ok = |b: bool, msg: String| if b { Ok(()) } else { Err(msg) };
    match name {
        "pve-node" => ok(
            re(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$", v),
            "value does not look like a valid node name".into(),
        ),
        "pve-vmid" => ok(
            re(r"^[1-9][0-9]{2,8}$", v),
            "value does not look like a valid VM ID".into(),
        ),
        "pve-configid" => ok(
            re(r"^[a-z][a-z0-9_-]+$", v),
            format!("invalid configuration ID '{v}'"),
        ),
        "pve-configid-list" => v
            .split([',', ';', ' ', '\0'])
            .filter(|s| !s.is_empty())
            .try_for_each(|id| check_named("pve-configid", id)),
        "pve-storage-id" => ok(
            re(STORAGE_ID, v),
            format!("storage ID '{v}' contains illegal characters"),
        ),
        "pve-poolid" => ok(
            re(r"^[A-Za-z0-9\-_.]+$", v),
            format!("pool name '{v}' contains illegal characters"),
        ),
        "dns-name" => ok(
            v.split('.')
                .all(|l| re(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$", l)),
            format!("value '{v}' does not look like a valid DNS name"),
        ),
        "urlencoded" => ok(
            re(r"^[-%a-zA-Z0-9_.!~*'()]*$", v),
            format!("invalid urlencoded string: {v}"),
        ),
        "pve-tag-list" => v
            .split([',', ';', ' '])
            .filter(|s| !s.is_empty())
            .try_for_each(|t| {
                ok(
                    re(r"^(?i)[a-z0-9_][a-z0-9_\-+.]*$", t),
                    format!("invalid tag '{t}'"),
                )
            }),
        "mac-addr" => {
            let good = re(r"^(?i)[a-f0-9]{2}(:[a-f0-9]{2}){5}$", v)
                && u8::from_str_radix(&v[..2], 16).is_ok_and(|b| b & 1 == 0);
            ok(
                good,
                format!("value '{v}' is not a valid unicast MAC address"),
            )
        }
        "pve-bridge-id" => ok(
            re(r"^[-_.\w\d]{1,15}$", v),
            format!("invalid bridge ID '{v}'"),
        ),
        "pve-volume-id" => ok(is_volume_id(v), format!("unable to parse volume ID '{v}'")),
        "pve-volume-id-or-qm-path" => ok(
            is_volume_id(v) || v.starts_with('/') || v == "none" || v == "cdrom",
            format!("unable to parse volume ID '{v}'"),
        ),
        "disk-size" => ok(
            re(r"^\d+(\.\d+)?[KMGT]?$", v),
            format!("unable to parse size '{v}'"),
        ),
        "pve-storage-content" => ok(
            CONTENT_TYPES.contains(&v),
            format!("invalid content type '{v}'"),
        ),
        "pve-storage-content-list" => v
            .split([',', ';', ' '])
            .filter(|s| !s.is_empty())
            .try_for_each(|c| check_named("pve-storage-content", c)),
        "ip" => ok(
            v.parse::<IpAddr>().is_ok(),
            format!("value '{v}' does not look like a valid IP address"),
        ),
        "ipv4" => ok(
            v.parse::<Ipv4Addr>().is_ok(),
            format!("value '{v}' does not look like a valid IPv4 address"),
        ),
        "ipv6" => ok(
            v.parse::<Ipv6Addr>().is_ok(),
            format!("value '{v}' does not look like a valid IPv6 address"),
        ),
        "address-list" => v
            .split([',', ';', ' '])
            .filter(|s| !s.is_empty())
            .try_for_each(|a| check_named("ip", a)),
        "pve-userid" => ok(
            re(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$", v),
            format!("value '{v}' does not look like a valid user name"),
        ),
        "pve-qm-ipconfig" => check_ipconfig(v),
        "pve-qm-cicustom" => check_cicustom(v),
        _ => Ok(()),
    }
}

fn is_volume_id(v: &str) -> bool {
    v.split_once(':')
        .is_some_and(|(store, name)| re(STORAGE_ID, store) && !name.is_empty())
}

fn cidr<A: std::str::FromStr>(v: &str, max: u8) -> bool {
    v.split_once('/')
        .is_some_and(|(a, p)| a.parse::<A>().is_ok() && p.parse::<u8>().is_ok_and(|p| p <= max))
}

fn check_ipconfig(v: &str) -> Result<(), String> {
    for (k, val) in split_kv(v)? {
        let good = match k.as_str() {
            "ip" => val == "dhcp" || cidr::<Ipv4Addr>(&val, 32),
            "gw" => val.parse::<Ipv4Addr>().is_ok(),
            "ip6" => val == "dhcp" || val == "auto" || cidr::<Ipv6Addr>(&val, 128),
            "gw6" => val.parse::<Ipv6Addr>().is_ok(),
            _ => {
                return Err(format!(
                    "{k}: property is not defined in schema and the schema does not allow additional properties"
                ));
            }
        };
        if !good {
            return Err(format!("{k}: invalid value '{val}'"));
        }
    }
    Ok(())
}

fn check_cicustom(v: &str) -> Result<(), String> {
    for (k, val) in split_kv(v)? {
        if !matches!(k.as_str(), "meta" | "network" | "user" | "vendor") {
            return Err(format!(
                "{k}: property is not defined in schema and the schema does not allow additional properties"
            ));
        }
        if !is_volume_id(&val) {
            return Err(format!("{k}: unable to parse volume ID '{val}'"));
        }
    }
    Ok(())
}

fn split_kv(v: &str) -> Result<Vec<(String, String)>, String> {
    v.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| format!("missing key in '{p}'"))
        })
        .collect()
}

/// Parses a property string against its inline format into `key → value` (aliases resolved).
pub fn parse_property_string(
    subs: &Map<String, Value>,
    v: &str,
) -> Result<BTreeMap<String, String>, String> {
    let default_key = subs
        .iter()
        .find(|(_, p)| p.get("default_key").and_then(Value::as_i64) == Some(1))
        .map(|(k, _)| k.clone());
    let mut out = BTreeMap::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let (key, val) = match part.split_once('=') {
            Some((k, val)) => (k.to_owned(), val.to_owned()),
            None => match &default_key {
                Some(k) if !out.contains_key(k) => (k.clone(), part.to_owned()),
                _ => {
                    return Err(format!(
                        "value without key, but schema does not define a default key: '{part}'"
                    ));
                }
            },
        };
        let Some(prop) = subs.get(&key) else {
            return Err(format!(
                "{key}: property is not defined in schema and the schema does not allow additional properties"
            ));
        };
        let target = prop
            .get("alias")
            .and_then(Value::as_str)
            .unwrap_or(&key)
            .to_owned();
        if let Some(ka) = prop.get("keyAlias").and_then(Value::as_str)
            && out.insert(ka.to_owned(), key.clone()).is_some()
        {
            return Err(format!(
                "{ka}: duplicate key in comma-separated list property"
            ));
        }
        if out.insert(target.clone(), val).is_some() {
            return Err(format!(
                "{target}: duplicate key in comma-separated list property"
            ));
        }
    }
    Ok(out)
}

/// Validates a property string against its inline format.
pub fn check_property_string(subs: &Map<String, Value>, v: &str) -> Result<(), String> {
    let parsed = parse_property_string(subs, v)?;
    for (k, val) in &parsed {
        let prop = subs
            .get(k)
            .ok_or_else(|| format!("{k}: property is not defined in schema"))?;
        check_value(prop, val, true).map_err(|e| format!("{k}: {e}"))?;
    }
    for (k, prop) in subs {
        if prop.get("alias").is_none() && !is_optional(prop) && !parsed.contains_key(k) {
            return Err(format!("{k}: property is missing and it is not optional"));
        }
    }
    Ok(())
}
