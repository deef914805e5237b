//! Human output: aligned tables, `key: value` blocks, times, sizes and event lines; plus the
//! `--json` printer. Everything returns strings so it is testable without capturing stdout.
//! Table cells, values and event messages are [escaped](crate::term::escape): they may come
//! from inside a sandbox.

use std::borrow::Cow;
use std::fmt::Display;

use agentlab_core::{Event, EventKind, Timestamp};
use serde::Serialize;

use crate::term::{agent_line, escape};

/// A plain-text table whose columns are aligned on the widest cell.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells render empty, extra cells are kept); control characters in
    /// cells are escaped.
    pub fn row(&mut self, cells: Vec<String>) {
        let cells = cells
            .into_iter()
            .map(|c| match escape(&c) {
                Cow::Borrowed(_) => c,
                Cow::Owned(e) => e,
            })
            .collect();
        self.rows.push(cells);
    }

    /// The table as lines joined by `\n` (with a trailing newline); columns are separated by
    /// two spaces, the last column is not padded and no line has trailing spaces.
    pub fn render(&self) -> String {
        let all = std::iter::once(&self.header).chain(&self.rows);
        let ncols = all.clone().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; ncols];
        for row in all.clone() {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in all {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                line.push_str(cell);
                if i + 1 < ncols {
                    let pad = width - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned (control characters escaped); pairs with an
/// empty value are left out.
pub fn kv(pairs: &[(&str, String)]) -> String {
    let shown: Vec<_> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    let width = shown
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in shown {
        let pad = width - k.chars().count();
        out.push_str(&format!("{k}:{}  {}\n", " ".repeat(pad), escape(v)));
    }
    out
}

/// An error as one JSON line for `--json` (on stderr): the daemon's error envelope when it
/// answered with one (`code`, `message`, `details`), else code `unreachable` (daemon not
/// reachable, exit 69) or `cli_error`, with the full message chain.
pub fn error_json(err: &anyhow::Error) -> String {
    let api = err
        .chain()
        .find_map(|e| e.downcast_ref::<agentlab_client::ClientError>())
        .map(|c| match c {
            agentlab_client::ClientError::Api(a) => {
                (a.code.clone(), a.message.clone(), a.details.clone())
            }
            agentlab_client::ClientError::Unreachable { .. } => (
                "unreachable".to_owned(),
                format!("{err:#}"),
                serde_json::Value::Null,
            ),
            _ => (
                "cli_error".to_owned(),
                format!("{err:#}"),
                serde_json::Value::Null,
            ),
        });
    let (code, message, details) = api.unwrap_or_else(|| {
        (
            "cli_error".to_owned(),
            format!("{err:#}"),
            serde_json::Value::Null,
        )
    });
    serde_json::json!({"error": {"code": code, "message": message, "details": details}}).to_string()
}

/// Pretty JSON of an API object.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}

/// Prints an API object as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", json(value)?);
    Ok(())
}

/// A timestamp as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time(ts: &Timestamp) -> String {
    ts.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `ts` relative to `now`: `in 59m`, `3h ago`, `2d ago`.
pub fn relative(ts: &Timestamp, now: &Timestamp) -> String {
    let secs = (*ts - *now).num_seconds();
    let abs = secs.unsigned_abs();
    let span = match abs {
        0..60 => format!("{abs}s"),
        60..3600 => format!("{}m", abs / 60),
        3600..86_400 => format!("{}h{:02}m", abs / 3600, abs % 3600 / 60),
        _ => format!("{}d", abs / 86_400),
    };
    if secs >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// The value, or `-` when absent.
pub fn dash<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A byte count in B, KiB, MiB or GiB.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// One event as a human line: agent output (`job_log`) as an [agent line](agent_line)
/// (`│ ` prefix, control characters escaped), anything else as `HH:MM:SS kind message`
/// (escaped; the daemon's messages already carry step durations).
pub fn event_line(e: &Event) -> String {
    if e.kind == EventKind::JobLog {
        return agent_line(&e.message);
    }
    format!(
        "{} {:<17} {}",
        e.ts.format("%H:%M:%S"),
        e.kind.as_str(),
        escape(&e.message)
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn ts(secs: i64) -> Timestamp {
        chrono::Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let mut t = Table::new(&["VMID", "NAME", "STATE"]);
        t.row(vec!["101".into(), "agentlab-101".into(), "READY".into()]);
        t.row(vec!["100234".into(), "x".into(), String::new()]);
        assert_eq!(
            t.render(),
            "VMID    NAME          STATE\n\
             101     agentlab-101  READY\n\
             100234  x\n"
        );
    }

    #[test]
    fn table_counts_characters_not_bytes() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["ää".into(), "x".into()]);
        assert_eq!(t.render(), "A   B\nää  x\n");
        assert_eq!(Table::new(&["ONLY"]).render(), "ONLY\n");
    }

    #[test]
    fn kv_aligns_and_skips_empty_values() {
        let out = kv(&[
            ("state", "FAILED".into()),
            ("ip", String::new()),
            ("last error", "boom".into()),
        ]);
        assert_eq!(out, "state:       FAILED\nlast error:  boom\n");
    }

    #[test]
    fn relative_times_and_sizes() {
        assert_eq!(relative(&ts(3599), &ts(0)), "in 59m");
        assert_eq!(relative(&ts(0), &ts(7300)), "2h01m ago");
        assert_eq!(relative(&ts(5), &ts(0)), "in 5s");
        assert_eq!(relative(&ts(0), &ts(200_000)), "2d ago");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(dash(None::<u32>), "-");
        assert_eq!(dash(Some(7)), "7");
        assert_eq!(time(&ts(0)), "2023-11-14 22:13:20");
    }

    #[test]
    fn event_lines_mark_agent_output_and_align_other_kinds() {
        let mut e = Event {
            id: 1,
            ts: ts(0),
            kind: EventKind::ProvisionStep,
            sandbox: None,
            job: None,
            message: "clone ok (create, 1300 ms)".into(),
            payload: serde_json::json!({"step": "clone", "duration_ms": 1300}),
        };
        assert_eq!(
            event_line(&e),
            "22:13:20 provision_step    clone ok (create, 1300 ms)"
        );
        e.message = "step\u{1b}[2K\rforged".into();
        assert_eq!(
            event_line(&e),
            "22:13:20 provision_step    step\\x1b[2K\\rforged"
        );
        e.kind = EventKind::JobLog;
        e.message = "hello from the agent".into();
        assert_eq!(event_line(&e), "│ hello from the agent");
        // An agent printing a forged event line, an OSC 52 clipboard write or a C1 CSI.
        e.message = "22:13:21 job_finished      COMPLETED (exit 0)".into();
        assert_eq!(
            event_line(&e),
            "│ 22:13:21 job_finished      COMPLETED (exit 0)"
        );
        e.message = "\u{1b}]52;c;aGVsbG8=\u{7}\u{9b}2J\u{8}x".into();
        assert_eq!(
            event_line(&e),
            "│ \\x1b]52;c;aGVsbG8=\\x07\\u{009b}2J\\x08x"
        );
    }

    #[test]
    fn tables_and_values_escape_control_characters() {
        let mut t = Table::new(&["NAME"]);
        t.row(vec!["a\u{1b}[8mhidden".into()]);
        assert_eq!(t.render(), "NAME\na\\x1b[8mhidden\n");
        assert_eq!(
            kv(&[("summary", "done\n12:00:00 job_finished x".into())]),
            "summary:  done\\n12:00:00 job_finished x\n"
        );
    }
}
