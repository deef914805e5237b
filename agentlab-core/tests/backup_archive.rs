#![cfg(test)]
//! `agentlab_core::backup`: archives written and verified, and every refusal.

use std::path::Path;

use agentlab_core::backup::{
    BackupError, FORMAT, Manifest, Source, unpack_verified, write_archive,
};

fn base() -> Manifest {
    Manifest {
        format: FORMAT,
        schema_version: 3,
        daemon_version: "test".into(),
        created_at: chrono::Utc::now(),
        omitted: vec![],
        files: vec![],
    }
}

fn archive(dir: &Path) -> Vec<u8> {
    std::fs::write(dir.join("a"), b"alpha").unwrap();
    std::fs::write(dir.join("b"), b"bravo bravo").unwrap();
    let sources = vec![
        Source {
            from: dir.join("a"),
            path: "state.db".into(),
            mode: 0o600,
        },
        Source {
            from: dir.join("b"),
            path: "secrets/default.age".into(),
            mode: 0o600,
        },
    ];
    let mut out = Vec::new();
    let m = write_archive(&mut out, base(), &sources).unwrap();
    assert_eq!(m.files.len(), 2);
    assert_eq!(m.file("state.db").unwrap().size, 5);
    out
}

/// Re-tars `bytes` with `edit` applied to each (path, data); `None` drops the entry.
fn retar(bytes: &[u8], edit: impl Fn(&str, Vec<u8>) -> Option<(String, Vec<u8>)>) -> Vec<u8> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = tar::Builder::new(Vec::new());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if let Some((p, d)) = edit(&path, data) {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            out.append_data(&mut h, p, d.as_slice()).unwrap();
        }
    }
    out.into_inner().unwrap()
}

#[test]
fn round_trip_restores_every_file() {
    let src = tempfile::tempdir().unwrap();
    let bytes = archive(src.path());
    let dest = tempfile::tempdir().unwrap();
    let m = unpack_verified(bytes.as_slice(), dest.path(), 3).unwrap();
    assert_eq!(m.schema_version, 3);
    assert_eq!(
        std::fs::read(dest.path().join("state.db")).unwrap(),
        b"alpha"
    );
    assert_eq!(
        std::fs::read(dest.path().join("secrets/default.age")).unwrap(),
        b"bravo bravo"
    );
}

#[test]
fn refusals() {
    let src = tempfile::tempdir().unwrap();
    let bytes = archive(src.path());
    let unpack = |b: &[u8], schema: u32| {
        let dest = tempfile::tempdir().unwrap();
        unpack_verified(b, dest.path(), schema)
    };
    assert!(matches!(
        unpack(&bytes, 2),
        Err(BackupError::NewerSchema {
            found: 3,
            supported: 2
        })
    ));

    let tampered = retar(&bytes, |p, mut d| {
        if p == "state.db" {
            d[0] = b'A';
        }
        Some((p.to_owned(), d))
    });
    assert!(
        matches!(unpack(&tampered, 3), Err(BackupError::Checksum { path, .. }) if path == "state.db")
    );

    let missing = retar(&bytes, |p, d| (p != "state.db").then(|| (p.to_owned(), d)));
    assert!(
        matches!(unpack(&missing, 3), Err(BackupError::Mismatch { path, .. }) if path == "state.db")
    );

    let extra = retar(&bytes, |p, d| {
        Some((
            if p == "state.db" {
                "other.db".to_owned()
            } else {
                p.to_owned()
            },
            d,
        ))
    });
    assert!(
        matches!(unpack(&extra, 3), Err(BackupError::Mismatch { path, .. }) if path == "other.db")
    );

    let no_manifest = retar(&bytes, |p, d| {
        (p != "manifest.json").then(|| (p.to_owned(), d))
    });
    assert!(matches!(
        unpack(&no_manifest, 3),
        Err(BackupError::Malformed(_))
    ));
}

#[test]
fn climbing_paths_are_refused() {
    let src = tempfile::tempdir().unwrap();
    let bytes = archive(src.path());
    // Raw header bytes: `tar::Builder` itself refuses to write `..` paths.
    let mut raw = bytes.clone();
    let name = b"secrets/default.age";
    // The entry's header: a 512-byte block starting with the name.
    let at = (0..raw.len())
        .step_by(512)
        .find(|&i| raw[i..].starts_with(name))
        .unwrap();
    raw[at..at + name.len()].copy_from_slice(b"../ecrets/default.a");
    let mut h = tar::Header::from_byte_slice(&raw[at..at + 512]).clone();
    h.set_cksum();
    raw[at..at + 512].copy_from_slice(h.as_bytes());
    let dest = tempfile::tempdir().unwrap();
    let err = unpack_verified(raw.as_slice(), dest.path(), 3).unwrap_err();
    assert!(matches!(err, BackupError::UnsafePath(_)), "{err:?}");
    assert!(!dest.path().parent().unwrap().join("ecrets").exists());
}
