//! Test helpers: read one sample's value from the text exposition.

use prometheus_client::encoding::text::encode;

use crate::families::Metrics;

/// The registry as text.
pub(crate) fn text(m: &Metrics) -> String {
    let mut out = String::new();
    encode(&mut out, m.registry()).expect("encode");
    out
}

/// The value of the sample `series` (name with its labels, as encoded), if present.
pub(crate) fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}
