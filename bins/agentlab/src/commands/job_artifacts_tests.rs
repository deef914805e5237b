//! Artifact destination and checksum rules.

use std::path::Path;

use super::*;

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn verify_accepts_matching_digests_case_insensitively() {
    verify("a", SHA, Some(&SHA.to_uppercase()), SHA).unwrap();
    verify("a", SHA, None, SHA).unwrap();
}

#[test]
fn verify_names_the_disagreeing_source() {
    let other = "0".repeat(64);
    let err = verify("report.json", SHA, Some(&other), SHA)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Checksum mismatch for artifact report.json"),
        "{err}"
    );
    assert!(err.contains("x-sha256 header"), "{err}");
    let err = verify("report.json", SHA, Some(SHA), &other)
        .unwrap_err()
        .to_string();
    assert!(err.contains("artifact listing"), "{err}");
}

#[test]
fn destination_rules() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        destination(None, "a.txt", true).unwrap(),
        Path::new("./a.txt")
    );
    assert_eq!(
        destination(Some(dir.path()), "a.txt", true).unwrap(),
        dir.path().join("a.txt")
    );
    let file = dir.path().join("renamed.txt");
    assert_eq!(destination(Some(&file), "a.txt", true).unwrap(), file);
    let sub = dir.path().join("all");
    assert_eq!(
        destination(Some(&sub), "a.txt", false).unwrap(),
        sub.join("a.txt")
    );
    assert!(
        sub.is_dir(),
        "several artifacts go into a created directory"
    );
    for bad in ["../x", "..", "a/b", ""] {
        assert!(destination(None, bad, true).is_err(), "{bad:?}");
    }
}
