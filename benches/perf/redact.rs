//! Redaction rows: the streaming `LineRedactor` over 256 KiB and 1 MiB of agent log (linear:
//! the same throughput at both sizes) against one `Redactor::redact` pass over the same text.

use std::time::Instant;

use agentlab_core::redact::Redactor;

use crate::Row;

fn values() -> Vec<String> {
    let key: String = (0..3072)
        .map(|i| {
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i * 7 % 64],
            )
        })
        .collect();
    vec![
        "sk-ant-api03-Xy7_q9~zz secret".to_owned(),
        "ghp_0123456789abcdefABCDEF0123456789ab".to_owned(),
        "p@ss word with spaces~!".to_owned(),
        "eyJhbGciOiJIUzI1NiJ9.payload.sig".to_owned(),
        format!("-----BEGIN KEY-----\n{key}\n-----END KEY-----\n"),
    ]
}

/// The log of `benches/redact.rs`: diff lines, URLs with escapes, JSON with escapes.
fn log(bytes: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&format!(
            "+    let x{i} = call(\"a\\\"b\\\\c\", 'q'); // GET /api?q=a%20b&r=%7E{i}+c\n\
             {{\"line\": {i}, \"msg\": \"it\\u0027s \\n fine\", \"tag\": \"&amp; &#39;\"}}\n"
        ));
        i += 1;
    }
    s
}

fn mib_per_s(bytes: usize, f: impl Fn()) -> f64 {
    let t = Instant::now();
    f();
    bytes as f64 / (1024.0 * 1024.0) / t.elapsed().as_secs_f64()
}

pub fn run() -> Vec<Row> {
    let values = values();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let r = Redactor::new(&refs);
    let mut rows = Vec::new();
    for kib in [256, 1024] {
        let text = log(kib * 1024);
        let stream = mib_per_s(text.len(), || {
            let mut lr = r.line_redactor();
            let mut n = 0;
            for line in text.lines() {
                n += lr.push_line(line).len();
            }
            n += lr.finish().len();
            std::hint::black_box(n);
        });
        let whole = mib_per_s(text.len(), || {
            std::hint::black_box(r.redact(&text));
        });
        rows.push(
            Row::new(
                format!("LineRedactor {kib} KiB (ref: redact)"),
                stream,
                "MiB/s",
            )
            .vs(whole)
            .target("linear"),
        );
    }
    rows
}
