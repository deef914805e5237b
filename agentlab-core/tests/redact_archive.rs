//! Tests of `agentlab_core::redact::archive`: secrets inside gzip, tar and nested archives are
//! found (by member, never by content), bombs and corrupt streams give typed errors, and
//! `sanitize_tar_gz` redacts text members and drops the rest.

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use agentlab_core::redact::archive::{
        ArchiveError, ScanLimits, bytes_contain_secret, sanitize_tar_gz, scan,
    };
    use agentlab_core::redact::{PLACEHOLDER, Redactor};
    use base64::Engine as _;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    const SECRET: &str = "arch secret~value/+9";

    fn redactor() -> Redactor {
        Redactor::new(&[SECRET])
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn members(data: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(data));
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                (name, d)
            })
            .collect()
    }

    fn found(data: &[u8]) -> Vec<String> {
        scan(data, &redactor(), ScanLimits::default())
            .unwrap()
            .into_iter()
            .map(|f| f.member)
            .collect()
    }

    #[test]
    fn clean_archive_has_no_findings() {
        let data = gz(&tar(&[("a.txt", b"hello"), ("b.gz", &gz(b"world"))]));
        assert!(found(&data).is_empty());
        assert!(!bytes_contain_secret(&data, &redactor()));
    }

    #[test]
    fn secret_in_every_nesting_is_found() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
        let quoted = SECRET
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace(' ', "+");
        let inner_tgz = gz(&tar(&[("deep/out.txt", format!("x {b64} y").as_bytes())]));
        let data = gz(&tar(&[
            ("runner.log", b"clean\n"),
            ("artifacts/plain.txt", format!("k={quoted}").as_bytes()),
            ("artifacts/out.txt.gz", &gz(SECRET.as_bytes())),
            ("artifacts/logs.tar.gz", &inner_tgz),
            ("artifacts/raw.tar", &tar(&[("x.bin", SECRET.as_bytes())])),
        ]));
        assert_eq!(
            found(&data),
            [
                "artifacts/plain.txt",
                "artifacts/out.txt.gz",
                "artifacts/logs.tar.gz!deep/out.txt",
                "artifacts/raw.tar!x.bin",
            ]
        );
        assert!(bytes_contain_secret(&data, &redactor()));
        // Findings name members, never the value.
        assert!(found(&data).iter().all(|m| !m.contains("secret")));
    }

    #[test]
    fn plain_gzip_multi_member_gzip_and_member_names() {
        assert_eq!(found(&gz(SECRET.as_bytes())), [""]);
        let mut two = gz(b"first member, clean");
        two.extend(gz(SECRET.as_bytes()));
        assert_eq!(found(&two), [""], "second gzip member");
        let named = gz(&tar(&[(
            &format!("dir/{}", SECRET.replace('/', "_")),
            b"x",
        )]));
        let r = Redactor::new(&[&SECRET.replace('/', "_")]);
        assert_eq!(
            scan(&named[..], &r, ScanLimits::default()).unwrap().len(),
            1
        );
    }

    #[test]
    fn data_after_the_tar_end_is_scanned() {
        let mut t = tar(&[("a.txt", b"clean")]);
        t.extend_from_slice(SECRET.as_bytes());
        assert_eq!(found(&gz(&t)), ["(after the end of the tar)"]);
    }

    #[test]
    fn value_across_a_chunk_boundary_in_a_large_member() {
        let mut big = vec![b'.'; (1 << 20) - 5];
        big.extend_from_slice(SECRET.as_bytes());
        big.extend(vec![b'.'; 1000]);
        assert_eq!(found(&gz(&tar(&[("big.txt", &big)]))), ["big.txt"]);
    }

    #[test]
    fn binary_member_with_the_secret_is_found() {
        let mut bin = vec![0xff, 0xfe, 0x00];
        bin.extend_from_slice(SECRET.as_bytes());
        bin.push(0xc3);
        assert_eq!(found(&gz(&tar(&[("a.bin", &bin)]))), ["a.bin"]);
    }

    #[test]
    fn bombs_and_corrupt_streams_are_typed_errors() {
        let bomb = gz(&vec![0u8; 8 << 20]);
        let limits = ScanLimits {
            max_total_bytes: 1 << 20,
            ..ScanLimits::default()
        };
        assert!(matches!(
            scan(&bomb[..], &redactor(), limits),
            Err(ArchiveError::TooLarge { .. })
        ));
        let mut cut = gz(&tar(&[("a.txt", &vec![b'a'; 100_000])]));
        cut.truncate(cut.len() / 2);
        assert!(matches!(
            scan(&cut[..], &redactor(), ScanLimits::default()),
            Err(ArchiveError::Corrupt { .. })
        ));
        assert!(
            bytes_contain_secret(&cut, &redactor()),
            "unreadable counts as unsafe"
        );
    }

    #[test]
    fn deeper_than_the_limit_is_scanned_as_bytes() {
        let deep = gz(&gz(&gz(SECRET.as_bytes())));
        let limits = ScanLimits {
            max_depth: 1,
            ..ScanLimits::default()
        };
        // Not unpacked past depth 1, and the compressed bytes do not show the value.
        assert!(scan(&deep[..], &redactor(), limits).unwrap().is_empty());
        assert_eq!(found(&deep), [""]);
    }

    #[test]
    fn sanitize_redacts_text_and_drops_compressed_members() {
        let data = gz(&tar(&[
            ("runner.log", b"clean\n"),
            (
                "artifacts/plain.txt",
                format!("token={SECRET}\n").as_bytes(),
            ),
            ("artifacts/out.txt.gz", &gz(SECRET.as_bytes())),
            ("artifacts/notes.txt", b"notes\n"),
        ]));
        let r = redactor();
        let findings = scan(&data[..], &r, ScanLimits::default()).unwrap();
        let mut out = Vec::new();
        let report =
            sanitize_tar_gz(&data[..], &mut out, &r, &findings, ScanLimits::default()).unwrap();
        assert_eq!(report.redacted, ["artifacts/plain.txt"]);
        assert_eq!(report.dropped, ["artifacts/out.txt.gz"]);
        let m = members(&out);
        let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "runner.log",
                "artifacts/plain.txt",
                "artifacts/notes.txt",
                "redacted.txt"
            ]
        );
        assert_eq!(m[1].1, format!("token={PLACEHOLDER}\n").as_bytes());
        assert_eq!(m[2].1, b"notes\n");
        let note = String::from_utf8(m[3].1.clone()).unwrap();
        assert!(note.contains("dropped: artifacts/out.txt.gz"), "{note}");
        assert!(
            scan(&out[..], &r, ScanLimits::default())
                .unwrap()
                .is_empty()
        );
    }
}
