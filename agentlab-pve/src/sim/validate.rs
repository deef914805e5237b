//! Request parameter validation with pve-common `JSONSchema.pm` semantics and messages.
//!
//! URI placeholders and body/query parameters are merged (a clash is an error, as in PVE), then
//! every parameter is checked against the method's `properties`: name (incl. indexed `net[n]`
//! keys), type (booleans only as `0`/`1`), enum, range, length, regex pattern, named formats and
//! inline property-string formats (see [`crate::sim::formats`]). Errors map parameter → message,
//! exactly what the simulator returns in a 400 `errors` object.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::Value;

use super::formats;
use super::schema::MethodSchema;

/// Parameter → message.
pub type Errors = BTreeMap<String, String>;

/// Validates the merged parameters of one request; returns them as a map on success.
pub fn validate(
    ms: &MethodSchema,
    vars: &BTreeMap<String, String>,
    params: &[(String, String)],
) -> Result<BTreeMap<String, String>, Errors> {
    let mut errors = Errors::new();
    let mut merged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in vars {
        merged.entry(k.clone()).or_default().push(v.clone());
    }
    for (k, v) in params {
        if let Some(uri) = vars.get(k) {
            if uri != v {
                errors.insert(
                    k.clone(),
                    "duplicate parameter (already defined in URI) with conflicting values!".into(),
                );
            }
            continue;
        }
        merged.entry(k.clone()).or_default().push(v.clone());
    }
    for (key, values) in &merged {
        let Some(prop) = find_property(ms, key) else {
            errors.insert(
                key.clone(),
                "property is not defined in schema and the schema does not allow additional properties".into(),
            );
            continue;
        };
        let ty = prop.get("type").and_then(Value::as_str).unwrap_or("string");
        if values.len() > 1 && ty != "array" {
            errors.insert(
                key.clone(),
                format!("type check ('{ty}') failed - got ARRAY"),
            );
            continue;
        }
        for v in values {
            if let Err(msg) = check_value(prop, v, false) {
                errors.insert(key.clone(), msg);
                break;
            }
        }
    }
    for (name, prop) in &ms.properties {
        if name.contains("[n]") || is_optional(prop) || merged.contains_key(name) {
            continue;
        }
        errors.insert(
            name.clone(),
            "property is missing and it is not optional".into(),
        );
    }
    let missing_requires: Vec<(String, String)> = merged
        .keys()
        .filter(|k| !errors.contains_key(*k))
        .filter_map(|key| {
            let req = find_property(ms, key)
                .and_then(|p| p.get("requires"))
                .and_then(Value::as_str)?;
            (!merged.contains_key(req)).then(|| {
                (
                    req.to_owned(),
                    format!("missing property - '{key}' requires this property"),
                )
            })
        })
        .collect();
    errors.extend(missing_requires);
    if errors.is_empty() {
        Ok(merged
            .into_iter()
            .map(|(k, mut v)| (k, v.pop().unwrap_or_default()))
            .collect())
    } else {
        Err(errors)
    }
}

/// Whether a property is optional (`optional: 1`).
pub fn is_optional(prop: &Value) -> bool {
    match prop.get("optional") {
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::Bool(b)) => *b,
        _ => false,
    }
}

fn find_property<'a>(ms: &'a MethodSchema, key: &str) -> Option<&'a Value> {
    if let Some(p) = ms.properties.get(key) {
        return Some(p);
    }
    let base = key.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() == key.len() || base.is_empty() {
        return None;
    }
    ms.properties.get(&format!("{base}[n]"))
}

/// Checks one value against a property; `in_propstr` relaxes boolean spelling as PVE does.
pub fn check_value(prop: &Value, v: &str, in_propstr: bool) -> Result<(), String> {
    let ty = prop.get("type").and_then(Value::as_str).unwrap_or("string");
    match ty {
        "boolean" => {
            let ok = if in_propstr {
                matches!(
                    v.to_ascii_lowercase().as_str(),
                    "1" | "0" | "on" | "off" | "yes" | "no" | "true" | "false"
                )
            } else {
                v == "1" || v == "0"
            };
            if !ok {
                return Err(format!("type check ('boolean') failed - got '{v}'"));
            }
        }
        "integer" | "number" => {
            let ok = if ty == "integer" {
                cached_regex(r"^[+-]?\d+$").is_some_and(|r| r.is_match(v))
            } else {
                cached_regex(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
                    .is_some_and(|r| r.is_match(v))
            };
            if !ok {
                return Err(format!("type check ('{ty}') failed - got '{v}'"));
            }
            let n: f64 = v.parse().unwrap_or(f64::NAN);
            if let Some(min) = num(prop.get("minimum"))
                && n < min
            {
                return Err(format!(
                    "value must have a minimum value of {}",
                    fmt_num(min)
                ));
            }
            if let Some(max) = num(prop.get("maximum"))
                && n > max
            {
                return Err(format!(
                    "value must have a maximum value of {}",
                    fmt_num(max)
                ));
            }
        }
        _ => {}
    }
    if let Some(values) = prop.get("enum").and_then(Value::as_array) {
        let list: Vec<String> = values
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect();
        if !list.iter().any(|e| e == v) {
            return Err(format!(
                "value '{v}' does not have a value in the enumeration '{}'",
                list.join(", ")
            ));
        }
    }
    if let Some(max) = num(prop.get("maxLength"))
        && v.chars().count() as f64 > max
    {
        return Err(format!(
            "value may only be {} characters long",
            fmt_num(max)
        ));
    }
    if let Some(min) = num(prop.get("minLength"))
        && (v.chars().count() as f64) < min
    {
        return Err(format!(
            "value must be at least {} characters long",
            fmt_num(min)
        ));
    }
    if let Some(pattern) = prop.get("pattern").and_then(Value::as_str)
        && !pattern_matches(pattern, v)
    {
        return Err("value does not match the regex pattern".into());
    }
    match prop.get("format") {
        Some(Value::String(name)) => {
            formats::check_named(name, v).map_err(|e| format!("invalid format - {e}"))
        }
        Some(Value::Object(subs)) => {
            formats::check_property_string(subs, v).map_err(|e| format!("invalid format - {e}"))
        }
        _ => Ok(()),
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Full-match of a Perl pattern from the schema (`(?^:` groups are translated).
pub fn pattern_matches(pattern: &str, v: &str) -> bool {
    let translated = pattern.replace("(?^:", "(?:").replace("{,", "{0,");
    // A pattern the regex engine cannot compile is not held against the request.
    cached_regex(&format!("^(?:{translated})$")).is_none_or(|r| r.is_match(v))
}

/// A compiled, cached regex (`None` if it does not compile).
pub fn cached_regex(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(props: Value) -> MethodSchema {
        let properties = match props {
            Value::Object(m) => m.into_iter(),
            _ => unreachable!(),
        }
        .collect();
        MethodSchema {
            properties,
            allowtoken: true,
        }
    }

    fn run(ms: &MethodSchema, params: &[(&str, &str)]) -> Result<BTreeMap<String, String>, Errors> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let vars = BTreeMap::from([("node".to_owned(), "pve1".to_owned())]);
        validate(ms, &vars, &params)
    }

    #[test]
    fn uri_clash_requires_and_indexed_keys() {
        let ms = schema(json!({
            "node": {"type": "string", "format": "pve-node"},
            "size": {"type": "string", "optional": 1},
            "format": {"type": "string", "optional": 1, "requires": "size"},
            "net[n]": {"type": "string", "optional": 1},
        }));
        assert!(run(&ms, &[("net0", "x"), ("net12", "y")]).is_ok());
        let e = run(&ms, &[("node", "other")]).unwrap_err();
        assert!(e["node"].starts_with("duplicate parameter"));
        let e = run(&ms, &[("format", "raw")]).unwrap_err();
        assert!(e.contains_key("size"), "{e:?}");
        let e = run(&ms, &[("netx", "y")]).unwrap_err();
        assert!(e.contains_key("netx"));
    }

    #[test]
    fn perl_patterns_and_named_formats() {
        assert!(pattern_matches(
            r"(?^:\d+(?:-\d+)?(?:;\d+(?:-\d+)?)*)",
            "1-3;7"
        ));
        assert!(!pattern_matches(r"\d+[MG]?", "10 G"));
        assert!(pattern_matches(r"[A-Za-z0-9\-_\s]{,8}", "abc"));
        let p = json!({"type": "string", "format": "pve-vmid"});
        assert!(check_value(&p, "100", false).is_ok());
        assert!(check_value(&p, "099", false).is_err());
        let tags = json!({"type": "string", "format": "pve-tag-list"});
        assert!(check_value(&tags, "agentlab;Team-A", false).is_ok());
        let cicustom = json!({"type": "string", "format": "pve-qm-cicustom"});
        assert!(check_value(&cicustom, "user=local:snippets/a.yaml", false).is_ok());
        assert!(check_value(&cicustom, "user=snippets/a.yaml", false).is_err());
        let mac = json!({"type": "string", "format": "mac-addr"});
        assert!(
            check_value(&mac, "03:00:00:00:00:01", false).is_err(),
            "multicast MAC"
        );
        let num = json!({"type": "number", "minimum": 0, "maximum": 128});
        assert!(check_value(&num, "1.5", false).is_ok());
        assert_eq!(
            check_value(&num, "129", false).unwrap_err(),
            "value must have a maximum value of 128"
        );
    }

    #[test]
    fn property_strings_with_key_aliases() {
        let net = json!({"type": "string", "format": {
            "model": {"type": "string", "default_key": 1, "enum": ["virtio", "e1000"]},
            "macaddr": {"type": "string", "optional": 1, "format": "mac-addr"},
            "virtio": {"alias": "macaddr", "keyAlias": "model"},
            "bridge": {"type": "string", "optional": 1, "format": "pve-bridge-id"},
            "firewall": {"type": "boolean", "optional": 1},
        }});
        assert!(
            check_value(
                &net,
                "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1",
                false
            )
            .is_ok()
        );
        assert!(check_value(&net, "e1000,bridge=vmbr0", false).is_ok());
        assert!(
            check_value(&net, "bridge=vmbr0", false)
                .unwrap_err()
                .contains("model: property is missing")
        );
        assert!(
            check_value(&net, "virtio,virtio=BC:24:11:00:00:01", false)
                .unwrap_err()
                .contains("duplicate")
        );
    }
}
