//! Secret scan of an uploaded artifact before it is recorded (defence in depth: the runner
//! already redacts its bundle, but the daemon does not trust what arrives from a guest).
//!
//! The stored file is scanned with the job's redactor ([`agentlab_core::redact::archive`]:
//! gzip, tar and nested archives are unpacked, every member checked). Then:
//! - nothing found: the file is kept as uploaded;
//! - secrets found in a `.tar.gz`: the file is rewritten — text members redacted, other members
//!   with a finding dropped, `redacted.txt` added — re-scanned, re-hashed, and a `warning`
//!   event (`what: artifact_redacted`) lists the members;
//! - secrets found in anything else, or the file cannot be read as what it claims (corrupt
//!   gzip/tar, a decompression bomb): the upload is refused with 422 `artifact_rejected`, the
//!   file deleted, and a `warning` event (`what: artifact_rejected`) names the reason.
//!
//! Event payloads carry member names (redacted), never contents.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use agentlab_core::redact::Redactor;
use agentlab_core::redact::archive::{self, ArchiveError, ScanLimits};
use agentlab_core::{EventKind, JobId, NewEvent};

use crate::error::ApiError;
use crate::guest::GuestState;

/// Deflate expands at most ~1032:1; allow nesting some headroom, within 4 GiB.
fn limits(size: u64) -> ScanLimits {
    ScanLimits {
        max_total_bytes: size.saturating_mul(2048).clamp(64 << 20, 4 << 30),
        ..ScanLimits::default()
    }
}

enum Verdict {
    Clean,
    Redacted {
        size: u64,
        sha256: String,
        redacted: Vec<String>,
        dropped: Vec<String>,
    },
    Rejected(String),
}

/// Scans the stored artifact `name` of `job`; returns its (possibly new) size and sha256.
pub async fn check(
    st: &GuestState,
    job: &JobId,
    name: &str,
    size: u64,
    sha256: String,
) -> Result<(u64, String), ApiError> {
    let redactor = st
        .redactors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(job)
        .cloned();
    let Some(redactor) = redactor else {
        return Ok((size, sha256));
    };
    let path = st.artifacts.path(job, name);
    let r = Arc::clone(&redactor);
    let p = path.clone();
    let verdict = tokio::task::spawn_blocking(move || verdict(&p, &r, size))
        .await
        .unwrap_or_else(|e| Verdict::Rejected(format!("scan task failed: {e}")));
    let now = st.lab.deps().clock.now();
    let event = |what: &str, message: String, extra: serde_json::Value| {
        let mut payload = serde_json::json!({"what": what, "name": name});
        if let (Some(p), serde_json::Value::Object(e)) = (payload.as_object_mut(), extra) {
            p.extend(e);
        }
        NewEvent::new(now, EventKind::Warning, message)
            .job(Some(job.clone()))
            .payload(payload)
    };
    match verdict {
        Verdict::Clean => Ok((size, sha256)),
        Verdict::Redacted {
            size,
            sha256,
            redacted,
            dropped,
        } => {
            tracing::warn!(job = %job, artifact = name, redacted = redacted.len(), dropped = dropped.len(), "secret values removed from an uploaded artifact");
            let ev = event(
                "artifact_redacted",
                format!(
                    "artifact {name}: secret values found; {} member(s) redacted, {} dropped",
                    redacted.len(),
                    dropped.len()
                ),
                serde_json::json!({"redacted": redacted, "dropped": dropped}),
            );
            let _ = st.lab.deps().store.append_event(ev).await;
            Ok((size, sha256))
        }
        Verdict::Rejected(reason) => {
            let reason = redactor.redact(&reason);
            let _ = tokio::fs::remove_file(&path).await;
            tracing::warn!(job = %job, artifact = name, reason = %reason, "uploaded artifact refused");
            let ev = event(
                "artifact_rejected",
                format!("artifact {name} refused: {reason}"),
                serde_json::json!({"reason": reason}),
            );
            let _ = st.lab.deps().store.append_event(ev).await;
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "artifact_rejected",
                format!("Artifact {name} refused: {reason}"),
            ))
        }
    }
}

fn verdict(path: &Path, redactor: &Redactor, size: u64) -> Verdict {
    let limits = limits(size);
    let open = || File::open(path).map(BufReader::new);
    let findings = match open()
        .map_err(|e| e.to_string())
        .and_then(|f| archive::scan(f, redactor, limits).map_err(|e| chain(&e)))
    {
        Ok(f) if f.is_empty() => return Verdict::Clean,
        Ok(f) => f,
        Err(e) => return Verdict::Rejected(format!("cannot be scanned ({e})")),
    };
    let tmp: PathBuf = path.with_file_name(format!(
        ".{}.scan",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let rewrite = || -> Result<archive::SanitizeReport, String> {
        let out = File::create(&tmp).map_err(|e| e.to_string())?;
        let input = open().map_err(|e| e.to_string())?;
        let report =
            archive::sanitize_tar_gz(input, io::BufWriter::new(out), redactor, &findings, limits)
                .map_err(|e| chain(&e))?;
        let again = archive::scan(
            File::open(&tmp).map_err(|e| e.to_string())?,
            redactor,
            limits,
        )
        .map_err(|e| chain(&e))?;
        if !again.is_empty() {
            return Err("secret values remain after redaction".to_owned());
        }
        Ok(report)
    };
    let members: Vec<String> = findings
        .iter()
        .map(|f| redactor.redact(&f.member))
        .collect();
    let report = match rewrite() {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Verdict::Rejected(format!(
                "secret values in {members:?} and it cannot be rewritten ({e})"
            ));
        }
    };
    match std::fs::rename(&tmp, path).and_then(|()| hash(path)) {
        Ok((size, sha256)) => Verdict::Redacted {
            size,
            sha256,
            redacted: report.redacted,
            dropped: report.dropped,
        },
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Verdict::Rejected(format!(
                "secret values in {members:?}; rewrite failed ({e})"
            ))
        }
    }
}

fn hash(path: &Path) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let size = io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok((size, hex::encode(hasher.finalize())))
}

fn chain(e: &ArchiveError) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    const SECRET: &str = "daemon secret~value";

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn tgz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        gz(&b.into_inner().unwrap())
    }

    fn run(data: &[u8]) -> (Verdict, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artifacts.tar.gz");
        std::fs::write(&path, data).unwrap();
        let v = verdict(&path, &Redactor::new(&[SECRET]), data.len() as u64);
        (v, std::fs::read(&path).unwrap_or_default())
    }

    #[test]
    fn clean_archive_is_kept() {
        let data = tgz(&[("a.txt", b"hello")]);
        let (v, after) = run(&data);
        assert!(matches!(v, Verdict::Clean));
        assert_eq!(after, data);
    }

    #[test]
    fn secret_in_a_member_is_redacted_and_rehashed() {
        let data = tgz(&[
            (
                "a.txt",
                format!("k={}", SECRET.replace(' ', "+")).as_bytes(),
            ),
            ("b.gz", &gz(SECRET.as_bytes())),
        ]);
        let (v, after) = run(&data);
        let Verdict::Redacted {
            size,
            sha256,
            redacted,
            dropped,
        } = v
        else {
            panic!("not redacted");
        };
        assert_eq!(
            (redacted, dropped),
            (vec!["a.txt".into()], vec!["b.gz".into()])
        );
        assert_eq!(size, after.len() as u64);
        assert_eq!(sha256, hex::encode(Sha256::digest(&after)));
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&after[..])
            .read_to_end(&mut text)
            .unwrap();
        assert!(!String::from_utf8_lossy(&text).contains("secret~value"));
    }

    #[test]
    fn plain_gzip_with_a_secret_and_corrupt_archives_are_refused() {
        let (v, _) = run(&gz(SECRET.as_bytes()));
        assert!(matches!(v, Verdict::Rejected(ref r) if r.contains("cannot be rewritten")));
        let mut cut = tgz(&[("a.txt", &vec![b'x'; 50_000])]);
        cut.truncate(cut.len() / 2);
        let (v, _) = run(&cut);
        assert!(matches!(v, Verdict::Rejected(ref r) if r.contains("cannot be scanned")));
    }
}
