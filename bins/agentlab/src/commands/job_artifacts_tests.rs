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

mod download {
    use agentlab_core::Artifact;

    use super::super::*;
    use crate::test_server::fixtures::ts;
    use crate::test_server::{Canned, CannedCtx, Reply};

    const BODY: &[u8] = b"{\"ok\":true}\n";

    fn listed(sha256: String) -> Artifact {
        Artifact {
            job: "job-1".parse().unwrap(),
            name: "report.json".into(),
            size: BODY.len() as u64,
            sha256,
            created_at: ts(0),
        }
    }

    fn real_sha() -> String {
        hex::encode(Sha256::digest(BODY))
    }

    async fn download(
        listing_sha: String,
        header_sha: String,
    ) -> (anyhow::Result<Code>, tempfile::TempDir) {
        let srv = Canned::start(vec![
            (
                "GET /v1/jobs/job-1/artifacts",
                Reply::json(200, &vec![listed(listing_sha)]),
            ),
            (
                "GET /v1/jobs/job-1/artifacts/report.json",
                Reply::raw(BODY, vec![("x-sha256", header_sha)]),
            ),
        ])
        .await;
        let out = tempfile::tempdir().unwrap();
        let cmd = ArtifactsCmd::Download {
            job: "job-1".parse().unwrap(),
            name: Some("report.json".into()),
            out: Some(out.path().to_path_buf()),
        };
        let result = run(
            &srv.ctx(true),
            ArtifactsArgs {
                cmd: Some(cmd),
                job: None,
            },
        )
        .await;
        (result, out)
    }

    fn entries(dir: &tempfile::TempDir) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn verified_download_lands_in_the_out_dir() {
        let (result, out) = download(real_sha(), real_sha()).await;
        assert_eq!(result.unwrap(), Code::Ok);
        assert_eq!(entries(&out), vec!["report.json"]);
        assert_eq!(std::fs::read(out.path().join("report.json")).unwrap(), BODY);
    }

    #[tokio::test]
    async fn header_mismatch_fails_and_leaves_nothing() {
        let (result, out) = download(real_sha(), "0".repeat(64)).await;
        let err = format!("{:#}", result.unwrap_err());
        assert!(
            err.contains("Checksum mismatch for artifact report.json"),
            "{err}"
        );
        assert!(err.contains("x-sha256 header"), "{err}");
        assert!(entries(&out).is_empty(), "{:?}", entries(&out));
    }

    #[tokio::test]
    async fn listing_mismatch_fails_and_leaves_nothing() {
        let (result, out) = download("1".repeat(64), real_sha()).await;
        let err = format!("{:#}", result.unwrap_err());
        assert!(err.contains("artifact listing"), "{err}");
        assert!(entries(&out).is_empty());
    }

    #[tokio::test]
    async fn unknown_name_lists_what_exists() {
        let srv = Canned::start(vec![(
            "GET /v1/jobs/job-1/artifacts",
            Reply::json(200, &vec![listed(real_sha())]),
        )])
        .await;
        let cmd = ArtifactsCmd::Download {
            job: "job-1".parse().unwrap(),
            name: Some("x".into()),
            out: None,
        };
        let err = run(
            &srv.ctx(true),
            ArtifactsArgs {
                cmd: Some(cmd),
                job: None,
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Job job-1 has no artifact named \"x\" (it has: report.json)"
        );
    }
}
