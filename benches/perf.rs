//! The performance suite (issue 15) in one command, printing one table:
//!
//! ```text
//! cargo bench -p agentlab-benches --bench perf
//! ```
//!
//! Every metric is measured next to a reference taken in the same run on the same machine,
//! so the ratio holds where absolute times do not. Sizes come from the environment:
//!
//! | variable | default | what |
//! |---|---|---|
//! | `AGENTLAB_PERF_JOBS` | 100000 | jobs in the synthetic store (the issue's scale: 1000000) |
//! | `AGENTLAB_PERF_EVENTS` | 1000000 | events in the synthetic store (issue: 10000000) |
//! | `AGENTLAB_PERF_LOGGERS` | 50 | jobs logging at once while followed |
//! | `AGENTLAB_PERF_LINES` | 100 | lines per logger |
//! | `AGENTLAB_PERF_SANDBOXES` | `1,50,200` | idle sandbox counts for the memory rows |
//! | `AGENTLAB_PERF_API_RATE` | 1000 | requests per second offered to each control API read route |
//! | `AGENTLAB_PERF_API_SECS` | 3 | seconds of load per route |
//!
//! The synthetic rows go through the real `SqliteStore` code (`insert_job`, `append_event`),
//! in a temporary directory.

use std::time::{Duration, Instant};

#[path = "perf/api.rs"]
mod api;
#[path = "perf/follow.rs"]
mod follow;
#[path = "perf/mem.rs"]
mod mem;
#[path = "perf/store.rs"]
mod store;
#[path = "perf/redact.rs"]
mod text;

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    /// What is measured.
    pub metric: String,
    /// The measured value.
    pub value: f64,
    /// The same-run reference, when there is one.
    pub reference: Option<f64>,
    /// Unit of value and reference.
    pub unit: &'static str,
    /// The target, as text.
    pub target: &'static str,
}

impl Row {
    /// A row.
    pub fn new(metric: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self {
            metric: metric.into(),
            value,
            reference: None,
            unit,
            target: "",
        }
    }

    /// With a reference.
    pub fn vs(mut self, reference: f64) -> Self {
        self.reference = Some(reference);
        self
    }

    /// With a target.
    pub fn target(mut self, target: &'static str) -> Self {
        self.target = target;
        self
    }
}

/// `n` from the environment variable `name`, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Median and 99th percentile of `samples`, in milliseconds.
pub fn p50_p99(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.5), at(0.99))
}

/// Runs `f` `n` times and returns each duration.
pub async fn time_n<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await;
        out.push(t.elapsed());
    }
    out
}

fn print(rows: &[Row]) {
    let w = rows
        .iter()
        .map(|r| r.metric.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "\n{:<w$}  {:>12}  {:>12}  {:>9}  {:<6}  target",
        "metric", "value", "reference", "ratio", "unit"
    );
    println!("{}", "-".repeat(w + 62));
    for r in rows {
        let reference = r.reference.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let ratio = r
            .reference
            .filter(|v| *v > 0.0)
            .map_or("-".to_owned(), |v| format!("{:.2}x", r.value / v));
        println!(
            "{:<w$}  {:>12.3}  {:>12}  {:>9}  {:<6}  {}",
            r.metric, r.value, reference, ratio, r.unit, r.target
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter is not supported (one table, all rows).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut rows = Vec::new();
    let started = Instant::now();
    rows.extend(rt.block_on(store::run()));
    rows.extend(rt.block_on(follow::run()));
    rows.extend(text::run());
    rows.extend(rt.block_on(api::run()));
    rows.extend(rt.block_on(mem::run()));
    print(&rows);
    println!("\n(suite took {:.1} s)", started.elapsed().as_secs_f64());
}
