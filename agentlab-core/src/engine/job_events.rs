//! Texts and payloads of the `job_finished` event.

use crate::engine::jobs::GuestReport;
use crate::model::JobOutcome;

/// One line summing up an outcome (exit code, failed step, error, summary).
pub(crate) fn summary(o: &JobOutcome) -> String {
    let mut parts = Vec::new();
    if let Some(c) = o.exit_code {
        parts.push(format!("exit {c}"));
    }
    if let Some(s) = &o.failed_step {
        parts.push(format!("failed at {s}"));
    }
    if let Some(e) = &o.error {
        parts.push(e.clone());
    }
    if let Some(s) = &o.summary {
        parts.push(s.clone());
    }
    if parts.is_empty() {
        "no details".into()
    } else {
        parts.join("; ")
    }
}

/// The `job_finished` event payload: the outcome, plus `pushed` when the runner pushed.
pub(crate) fn finished_payload(report: &GuestReport) -> serde_json::Value {
    let mut v = serde_json::to_value(&report.outcome).unwrap_or_default();
    if let (Some(map), Some(p)) = (v.as_object_mut(), &report.pushed) {
        map.insert("pushed".into(), serde_json::to_value(p).unwrap_or_default());
    }
    v
}
