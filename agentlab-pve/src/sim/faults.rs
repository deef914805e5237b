//! Fault injection: per-endpoint error rates, latencies, lock timeouts, 5xx, dropped
//! connections and failing tasks.
//!
//! Rules are matched in order against the request method and the concrete path (substring) or
//! the schema path template (exact); a matching rule fires with its `probability` and, when
//! `remaining` is set, only that many times.

use std::time::Duration;

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answer with this HTTP status and message.
    Http {
        /// Status code (e.g. 500, 503, 595).
        status: u16,
        /// Message (reason phrase and body `message`).
        message: String,
    },
    /// 500 `can't lock file '/var/lock/qemu-server/lock-<vmid>.conf' - got timeout`.
    LockTimeout,
    /// Close the connection without a complete response.
    Drop,
    /// Delay the answer, then handle the request normally.
    Latency(Duration),
    /// Accept the request, but the task it starts fails with this message.
    TaskFailure(String),
}

/// One fault-injection rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// HTTP method to match (`None`: any).
    pub method: Option<String>,
    /// Substring of the concrete path (after `/api2/json`), or the exact path template.
    pub path: String,
    /// What happens.
    pub kind: FaultKind,
    /// Probability in `0.0..=1.0` that a matching request is hit.
    pub probability: f64,
    /// Fire at most this many more times (`None`: unlimited).
    pub remaining: Option<u32>,
}

impl FaultRule {
    /// A rule that always fires for `method` requests whose path contains `path`.
    pub fn always(method: &str, path: &str, kind: FaultKind) -> Self {
        Self {
            method: Some(method.to_owned()),
            path: path.to_owned(),
            kind,
            probability: 1.0,
            remaining: None,
        }
    }

    /// Limits the rule to `n` firings.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Sets the firing probability.
    #[must_use]
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = p;
        self
    }

    fn matches(&self, method: &str, path: &str, template: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && (path.contains(&self.path) || template == self.path)
            && self.remaining != Some(0)
    }
}

/// Picks the faults that fire for one request (decrementing their budgets).
pub fn fire(rules: &mut [FaultRule], method: &str, path: &str, template: &str) -> Vec<FaultKind> {
    let mut out = Vec::new();
    for rule in rules.iter_mut() {
        if !rule.matches(method, path, template) {
            continue;
        }
        if rule.probability < 1.0 && rand::random::<f64>() >= rule.probability {
            continue;
        }
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        out.push(rule.kind.clone());
    }
    out
}
