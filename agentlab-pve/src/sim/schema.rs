//! The official PVE API schema (`apidoc.json`), loaded at runtime and indexed by path.
//!
//! The file is a list of trees of `{path, info: {METHOD: {parameters}}, children}` nodes; paths
//! carry `{placeholders}`. [`Schema::lookup`] matches a concrete request path against the
//! templates (literal segments win over placeholders) and hands back the method's parameter
//! properties for [`crate::sim::validate`].

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// One API method: its parameter properties and flags.
#[derive(Debug, Clone)]
pub struct MethodSchema {
    /// `parameters.properties` (name → JSON-schema-like property).
    pub properties: BTreeMap<String, Value>,
    /// Whether API tokens may call it.
    pub allowtoken: bool,
}

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Var(String),
}

#[derive(Debug, Clone)]
struct Entry {
    template: String,
    segs: Vec<Seg>,
    methods: BTreeMap<String, MethodSchema>,
}

/// The loaded schema.
#[derive(Debug, Clone)]
pub struct Schema {
    entries: Vec<Entry>,
}

/// Result of matching a request against the schema.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// No path template matches.
    NoPath,
    /// The path exists but not with this method.
    NoMethod,
    /// Found: the template, the method, and the placeholder values.
    Found {
        /// The path template (`/nodes/{node}/qemu/{vmid}/clone`).
        template: &'a str,
        /// The method schema.
        method: &'a MethodSchema,
        /// Placeholder values taken from the path.
        vars: BTreeMap<String, String>,
    },
}

/// Schema loading failure.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read.
    #[error("Cannot read schema {path}")]
    Read {
        /// File path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the expected JSON.
    #[error("Invalid schema {path}: {detail}")]
    Invalid {
        /// File path.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl Schema {
    /// Loads `apidoc.json` from `path`.
    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let invalid = |detail: String| SchemaError::Invalid {
            path: path.display().to_string(),
            detail,
        };
        let root: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let trees = root
            .as_array()
            .ok_or_else(|| invalid("top level is not a list".into()))?;
        let mut entries = Vec::new();
        for tree in trees {
            collect(tree, &mut entries);
        }
        if entries.is_empty() {
            return Err(invalid("no methods found".into()));
        }
        Ok(Self { entries })
    }

    /// Number of methods in the schema.
    pub fn method_count(&self) -> usize {
        self.entries.iter().map(|e| e.methods.len()).sum()
    }

    /// Matches `method path` (path relative to `/api2/json`).
    pub fn lookup(&self, method: &str, path: &str) -> Lookup<'_> {
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut best: Option<(&Entry, usize)> = None;
        for entry in &self.entries {
            if entry.segs.len() != parts.len() {
                continue;
            }
            let mut literal = 0;
            let ok = entry.segs.iter().zip(&parts).all(|(seg, part)| match seg {
                Seg::Lit(l) => {
                    literal += 1;
                    l == part
                }
                Seg::Var(_) => true,
            });
            if ok && best.is_none_or(|(_, n)| literal > n) {
                best = Some((entry, literal));
            }
        }
        let Some((entry, _)) = best else {
            return Lookup::NoPath;
        };
        let Some(ms) = entry.methods.get(method) else {
            return Lookup::NoMethod;
        };
        let vars = entry
            .segs
            .iter()
            .zip(&parts)
            .filter_map(|(seg, part)| match seg {
                Seg::Var(v) => Some((v.clone(), percent_decode(part))),
                Seg::Lit(_) => None,
            })
            .collect();
        Lookup::Found {
            template: &entry.template,
            method: ms,
            vars,
        }
    }
}

fn collect(node: &Value, out: &mut Vec<Entry>) {
    if let Some(path) = node.get("path").and_then(Value::as_str) {
        let mut methods = BTreeMap::new();
        if let Some(info) = node.get("info").and_then(Value::as_object) {
            for (m, def) in info {
                let properties = def
                    .pointer("/parameters/properties")
                    .and_then(Value::as_object)
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                let allowtoken = def.get("allowtoken").and_then(Value::as_i64).unwrap_or(0) == 1;
                methods.insert(
                    m.clone(),
                    MethodSchema {
                        properties,
                        allowtoken,
                    },
                );
            }
        }
        let segs = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(v) => Seg::Var(v.to_owned()),
                    None => Seg::Lit(s.to_owned()),
                },
            )
            .collect();
        out.push(Entry {
            template: path.to_owned(),
            segs,
            methods,
        });
    }
    if let Some(children) = node.get("children").and_then(Value::as_array) {
        for child in children {
            collect(child, out);
        }
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_and_placeholders_decode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apidoc.json");
        let doc = serde_json::json!([{"path": "/nodes", "info": {"GET": {"parameters": {"properties": {}}}}, "children": [
            {"path": "/nodes/{node}", "info": {"GET": {"allowtoken": 1}}, "children": [
                {"path": "/nodes/{node}/tasks/{upid}", "info": {"DELETE": {}}},
                {"path": "/nodes/{node}/tasks/status", "info": {"GET": {}}}]}]}]);
        std::fs::write(&path, doc.to_string()).unwrap();
        let s = Schema::load(&path).unwrap();
        assert_eq!(s.method_count(), 4);
        match s.lookup("GET", "/nodes/pve1/tasks/status") {
            Lookup::Found { template, .. } => assert_eq!(template, "/nodes/{node}/tasks/status"),
            other => panic!("{other:?}"),
        }
        match s.lookup("DELETE", "/nodes/pve1/tasks/UPID%3Apve1%3A00") {
            Lookup::Found { vars, .. } => assert_eq!(vars["upid"], "UPID:pve1:00"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.lookup("POST", "/nodes/pve1"), Lookup::NoMethod));
        assert!(matches!(s.lookup("GET", "/cluster"), Lookup::NoPath));
        assert!(Schema::load(&dir.path().join("missing.json")).is_err());
    }
}
