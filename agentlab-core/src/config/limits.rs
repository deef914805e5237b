//! `limits:` bounds the control API enforces on requests (body sizes, YAML parsing, lease
//! lengths, workspace sizes, repository URL schemes), with their defaults.

use serde::Deserialize;

use crate::yaml::{ErrorKind, YamlLimits};

use super::validate::Violation;

/// `limits:` bounds on what a control API request may ask for. Requests outside them get a
/// typed 4xx error instead of failing later (or costing the daemon its CPU).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest JSON request body of the control API in bytes (default 64 KiB).
    pub max_body_bytes: u64,
    /// Largest body of `POST /v1/profiles/validate` in bytes (default 1 MiB).
    pub max_profile_body_bytes: u64,
    /// Deepest YAML nesting (flow and block collections) a profile body may use (default 64).
    pub max_yaml_depth: usize,
    /// Most flow collections (`[` / `{`) a profile body may open in all (default 10000).
    pub max_yaml_flow_collections: usize,
    /// CPU time budget of one profile validation in milliseconds (default 5000).
    pub yaml_parse_timeout_ms: u64,
    /// Profile validations running at once; more wait for a slot within the budget
    /// (default 2).
    pub yaml_parse_concurrency: usize,
    /// Longest lease a request may ask for, in minutes (default 10080, one week).
    pub max_ttl_minutes: u32,
    /// Largest workspace a request may create, in GiB (default 1024).
    pub max_workspace_gb: u32,
    /// URL schemes a job's repository may use (default `https`, `http`, `ssh`, `git`);
    /// scp-like `user@host:path` counts as `ssh`.
    pub repo_schemes: Vec<String>,
    /// Allow `file://` URLs and local paths as job repositories (default `false`; tests and
    /// single-host demos turn it on).
    pub allow_file_repos: bool,
    /// Items per page of a list route when the request gives no `limit` (default 100).
    pub list_default_limit: u32,
    /// Largest `limit` a list route accepts (default 1000).
    pub list_max_limit: u32,
    /// Most bytes one `sandbox cp` may move, either way (tar stream size; default 10 GiB).
    pub copy_max_bytes: u64,
    /// Requests per second one local user (uid) may make on the control socket, sustained
    /// (default 50). The remote API has its own rate (`remote.rate_per_sec`).
    pub socket_rate_per_sec: u32,
    /// Requests one local user may make at once above the sustained rate (default 200).
    pub socket_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_profile_body_bytes: 1024 * 1024,
            max_yaml_depth: 64,
            max_yaml_flow_collections: 10_000,
            yaml_parse_timeout_ms: 5_000,
            yaml_parse_concurrency: 2,
            max_ttl_minutes: 7 * 24 * 60,
            max_workspace_gb: 1024,
            repo_schemes: ["https", "http", "ssh", "git"].map(str::to_owned).to_vec(),
            allow_file_repos: false,
            list_default_limit: 100,
            list_max_limit: 1000,
            copy_max_bytes: 10 << 30,
            socket_rate_per_sec: 50,
            socket_burst: 200,
        }
    }
}

impl LimitsConfig {
    /// The YAML parsing limits of profile bodies.
    pub fn yaml(&self) -> YamlLimits {
        YamlLimits {
            max_depth: self.max_yaml_depth,
            max_flow_collections: self.max_yaml_flow_collections,
        }
    }
}

/// Checks the ranges of the `limits:` section.
pub(super) fn validate_limits(l: &LimitsConfig) -> Result<(), Violation> {
    let positive: [(u64, &'static str); 13] = [
        (l.socket_rate_per_sec.into(), "limits.socket_rate_per_sec"),
        (l.socket_burst.into(), "limits.socket_burst"),
        (l.max_body_bytes, "limits.max_body_bytes"),
        (l.max_profile_body_bytes, "limits.max_profile_body_bytes"),
        (to_u64(l.max_yaml_depth), "limits.max_yaml_depth"),
        (
            to_u64(l.max_yaml_flow_collections),
            "limits.max_yaml_flow_collections",
        ),
        (l.yaml_parse_timeout_ms, "limits.yaml_parse_timeout_ms"),
        (
            to_u64(l.yaml_parse_concurrency),
            "limits.yaml_parse_concurrency",
        ),
        (l.max_ttl_minutes.into(), "limits.max_ttl_minutes"),
        (l.max_workspace_gb.into(), "limits.max_workspace_gb"),
        (l.list_default_limit.into(), "limits.list_default_limit"),
        (l.list_max_limit.into(), "limits.list_max_limit"),
        (l.copy_max_bytes, "limits.copy_max_bytes"),
    ];
    for (value, field) in positive {
        if value == 0 {
            return Err(invalid(field, "must be at least 1".to_owned()));
        }
    }
    if l.max_yaml_depth > 128 {
        // The YAML library refuses deeper documents anyway.
        return Err(invalid(
            "limits.max_yaml_depth",
            "must be at most 128".to_owned(),
        ));
    }
    if l.list_default_limit > l.list_max_limit {
        return Err(invalid(
            "limits.list_default_limit",
            format!(
                "must be at most limits.list_max_limit ({})",
                l.list_max_limit
            ),
        ));
    }
    const KNOWN: [&str; 4] = ["https", "http", "ssh", "git"];
    for s in &l.repo_schemes {
        if !KNOWN.contains(&s.as_str()) {
            return Err(invalid(
                "limits.repo_schemes",
                format!(
                    "unknown scheme {s:?} (use https, http, ssh or git; local repositories need allow_file_repos)"
                ),
            ));
        }
    }
    Ok(())
}

fn to_u64(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn invalid(field: &'static str, reason: String) -> Violation {
    Violation {
        kind: ErrorKind::Invalid,
        field,
        reason,
    }
}
