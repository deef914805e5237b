//! Copy streams through a real guest handler: tar in, tar out, sha256 checks, refusals.

#[cfg(test)]
mod common;

#[cfg(test)]
mod tests {

    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::path::Path;

    use super::common::*;
    use agentlab_core::api::channel::{
        CopyInRequest, CopyOutRequest, DataSummary, ExecUser, StreamRequest,
    };
    use agentlab_core::api::frame::{CHUNK, Frame};
    use bytes::Bytes;
    use futures::{SinkExt as _, StreamExt as _};
    use sha2::{Digest as _, Sha256};

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn summary(b: &[u8]) -> DataSummary {
        DataSummary {
            bytes: b.len() as u64,
            sha256: sha(b),
        }
    }

    /// Sends `tar` as a copy into `dest`; `Ok` on `Exit(0)`, else the error text.
    async fn copy_in(
        client: &Client,
        dest: &Path,
        tar: &[u8],
        sum: DataSummary,
    ) -> Result<(), String> {
        let mut chan = client
            .request(StreamRequest::CopyIn(CopyInRequest {
                path: dest.display().to_string(),
                user: ExecUser::Agent,
            }))
            .await?;
        for c in tar.chunks(CHUNK) {
            if chan
                .send(Frame::Data(Bytes::copy_from_slice(c)))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = chan.send(Frame::DataEnd(Some(sum))).await;
        match chan.next().await {
            Some(Ok(Frame::Exit(e))) if e.code == 0 => Ok(()),
            Some(Ok(Frame::Error(e))) => Err(e),
            other => panic!("{other:?}"),
        }
    }

    /// Copies `path` out; returns the tar bytes (checked against the summary).
    async fn copy_out(client: &Client, path: &str) -> Result<Vec<u8>, String> {
        let mut chan = client
            .request(StreamRequest::CopyOut(CopyOutRequest {
                path: path.to_owned(),
                user: ExecUser::Agent,
            }))
            .await?;
        let mut tar = Vec::new();
        loop {
            match chan.next().await {
                Some(Ok(Frame::Data(b))) => tar.extend_from_slice(&b),
                Some(Ok(Frame::DataEnd(Some(s)))) => {
                    assert_eq!(s, summary(&tar), "summary of the bytes sent");
                    return Ok(tar);
                }
                Some(Ok(Frame::Error(e))) => return Err(e),
                other => panic!("{other:?}"),
            }
        }
    }

    fn make_tree(root: &Path) {
        std::fs::create_dir_all(root.join("tree/bin")).expect("mkdir");
        std::fs::create_dir_all(root.join("tree/empty")).expect("mkdir");
        std::fs::write(root.join("tree/a.txt"), "alpha\n").expect("write");
        std::fs::set_permissions(
            root.join("tree/a.txt"),
            std::fs::Permissions::from_mode(0o640),
        )
        .expect("chmod");
        std::fs::write(root.join("tree/bin/run.sh"), "#!/bin/sh\necho run\n").expect("write");
        std::fs::set_permissions(
            root.join("tree/bin/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        let big: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(root.join("tree/big.bin"), big).expect("write");
        std::os::unix::fs::symlink("a.txt", root.join("tree/link")).expect("symlink");
    }

    fn tar_of(dir: &Path, name: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(name, dir.join(name)).expect("tar");
        b.into_inner().expect("tar")
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p)
            .expect("meta")
            .permissions()
            .mode()
            & 0o7777
    }

    fn same_tree(a: &Path, b: &Path) {
        for rel in ["a.txt", "bin/run.sh", "big.bin"] {
            assert_eq!(
                std::fs::read(a.join(rel)).expect("read a"),
                std::fs::read(b.join(rel)).expect("read b"),
                "{rel}"
            );
            assert_eq!(mode(&a.join(rel)), mode(&b.join(rel)), "mode of {rel}");
        }
        assert!(b.join("empty").is_dir());
        assert_eq!(
            std::fs::read_link(b.join("link")).expect("link"),
            Path::new("a.txt")
        );
    }

    #[tokio::test]
    async fn tree_and_file_round_trip_with_modes() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let src = tempfile::tempdir().expect("src");
        make_tree(src.path());
        let tar = tar_of(src.path(), "tree");
        let dest = agent_dir();
        let into = dest.path().join("new/dir");
        copy_in(&client, &into, &tar, summary(&tar))
            .await
            .expect("copy in");
        same_tree(&src.path().join("tree"), &into.join("tree"));
        if is_root() {
            for rel in [
                "new",
                "new/dir/tree",
                "new/dir/tree/a.txt",
                "new/dir/tree/bin/run.sh",
            ] {
                let md = std::fs::symlink_metadata(dest.path().join(rel)).expect("meta");
                assert_eq!(
                    (md.uid(), md.gid()),
                    (1000, 1000),
                    "{rel} belongs to the agent"
                );
            }
        }

        let out_tar = copy_out(&client, &into.join("tree").display().to_string())
            .await
            .expect("copy out");
        let back = tempfile::tempdir().expect("back");
        tar::Archive::new(&out_tar[..])
            .unpack(back.path())
            .expect("unpack");
        same_tree(&src.path().join("tree"), &back.path().join("tree"));

        let one = copy_out(&client, &into.join("tree/bin/run.sh").display().to_string())
            .await
            .expect("copy out file");
        let mut archive = tar::Archive::new(&one[..]);
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["run.sh"]);
    }

    #[tokio::test]
    async fn missing_paths_and_bad_checksums_are_errors() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let err = copy_out(&client, "/no/such/path")
            .await
            .expect_err("missing");
        assert_eq!(err, "/no/such/path: No such file or directory");
        let src = tempfile::tempdir().expect("src");
        make_tree(src.path());
        let tar = tar_of(src.path(), "tree");
        let dest = agent_dir();
        let mut wrong = summary(&tar);
        wrong.sha256 = sha(b"something else");
        let err = copy_in(&client, dest.path(), &tar, wrong)
            .await
            .expect_err("mismatch");
        assert!(err.contains("sha256 mismatch"), "{err}");
    }

    /// A tar entry with a raw name (tar's own builder refuses unsafe names).
    fn raw_entry(
        b: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }

    #[tokio::test]
    async fn entries_leaving_the_destination_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let outside = agent_dir();
        let cases: [&[(&str, tar::EntryType, &str)]; 3] = [
            &[("../evil", tar::EntryType::Regular, "")],
            &[("/abs-evil", tar::EntryType::Regular, "")],
            &[
                (
                    "hop",
                    tar::EntryType::Symlink,
                    &outside.path().display().to_string(),
                ),
                ("hop/evil", tar::EntryType::Regular, ""),
            ],
        ];
        for case in cases {
            let mut b = tar::Builder::new(Vec::new());
            for (name, kind, link) in case {
                raw_entry(
                    &mut b,
                    name,
                    *kind,
                    link,
                    if link.is_empty() { b"pwned" } else { b"" },
                );
            }
            let tar = b.into_inner().expect("tar");
            let dest = agent_dir();
            let into = dest.path().join("d");
            let err = copy_in(&client, &into, &tar, summary(&tar))
                .await
                .expect_err("refused");
            assert!(err.contains("evil") || err.contains("outside"), "{err}");
            assert!(!dest.path().join("evil").exists());
            assert!(!outside.path().join("evil").exists(), "{err}");
            assert!(!Path::new("/abs-evil").exists());
        }
    }

    #[tokio::test]
    async fn a_full_disk_is_a_clear_error() {
        if !is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "the full-disk test needs root in CI"
            );
            eprintln!("SKIPPED: not root (cannot mount a small tmpfs)");
            return;
        }
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let mnt = tempfile::tempdir().expect("mnt");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,uid=1000,gid=1000", "tmpfs"])
            .arg(mnt.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot mount a tmpfs in CI"
            );
            eprintln!("SKIPPED: cannot mount a tmpfs");
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        let data = vec![1u8; 512 * 1024];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "big.bin", &data[..]).expect("tar");
        let tar = b.into_inner().expect("tar");
        let result = copy_in(&client, mnt.path(), &tar, summary(&tar)).await;
        let _ = std::process::Command::new("umount")
            .arg(mnt.path())
            .status();
        let err = result.expect_err("disk full");
        assert!(err.contains("No space left on device"), "{err}");
        assert!(err.contains("big.bin"), "{err}");
    }
}
