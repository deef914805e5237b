//! Redaction benchmarks: `Redactor::redact` over a 256 KiB agent log (a diff with `+` lines,
//! URLs with percent-escapes, JSON with backslash escapes: every character that can start an
//! escaped match), the streaming `LineRedactor` over the same lines, and the archive scan of a
//! tar.gz holding it. The bundle has five values, one of them a 3 KiB SSH-key-like value.
//!
//! Run with `cargo bench -p agentlab-benches --bench redact`.

use std::hint::black_box;
use std::io::Write;

use agentlab_core::redact::Redactor;
use agentlab_core::redact::archive::{ScanLimits, scan};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

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

fn log() -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 256 * 1024 {
        s.push_str(&format!(
            "+    let x{i} = call(\"a\\\"b\\\\c\", 'q'); // GET /api?q=a%20b&r=%7E{i}+c\n\
             {{\"line\": {i}, \"msg\": \"it\\u0027s \\n fine\", \"tag\": \"&amp; &#39;\"}}\n"
        ));
        i += 1;
    }
    s
}

fn bench(c: &mut Criterion) {
    let values = values();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let r = Redactor::new(&refs);
    let text = log();
    let mut g = c.benchmark_group("redact");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(10);
    g.bench_function("redact_256k_log", |b| b.iter(|| black_box(r.redact(&text))));
    g.bench_function("line_redactor_256k_log", |b| {
        b.iter(|| {
            let mut lr = r.line_redactor();
            let mut n = 0;
            for line in text.lines() {
                n += lr.push_line(line).len();
            }
            n += lr.finish().len();
            black_box(n)
        });
    });
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    t.append_data(&mut h, "runner.log", text.as_bytes())
        .expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&t.into_inner().expect("tar")).expect("gzip");
    let tgz = gz.finish().expect("gzip");
    g.bench_function("archive_scan_256k_tgz", |b| {
        b.iter(|| black_box(scan(&tgz[..], &r, ScanLimits::default()).map(|f| f.len())));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
