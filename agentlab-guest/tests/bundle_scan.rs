//! The artifact bundle never carries a secret inside a compressed or archived file the agent
//! left in its artifacts directory.

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::{Read, Write};

    use agentlab_core::redact::Redactor;
    use agentlab_core::redact::archive::{ScanLimits, scan};
    use agentlab_guest::artifacts::{BundleSpec, bundle};
    use flate2::Compression;
    use flate2::write::GzEncoder;

    const SECRET: &str = "bundle secret~value 42";

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn compressed_artifacts_with_a_secret_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let arts = dir.path().join("arts");
        fs::create_dir_all(&arts).unwrap();
        fs::write(arts.join("leak.txt.gz"), gz(SECRET.as_bytes())).unwrap();
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(SECRET.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, "inner.txt", SECRET.as_bytes())
            .unwrap();
        fs::write(arts.join("leak.tar.gz"), gz(&t.into_inner().unwrap())).unwrap();
        fs::write(arts.join("clean.gz"), gz(b"nothing to see")).unwrap();
        let redactor = Redactor::new(&[SECRET]);
        let out = dir.path().join("a.tar.gz");
        let spec = BundleSpec {
            out: &out,
            max_bytes: 1 << 20,
            redactor: &redactor,
            files: vec![],
            truncatable: None,
            artifacts_dir: &arts,
        };
        let summary = bundle(&spec).unwrap();
        assert_eq!(summary.included, ["artifacts/clean.gz"], "{summary:?}");
        assert_eq!(summary.skipped.len(), 2, "{summary:?}");
        let data = fs::read(&out).unwrap();
        assert!(
            scan(&data[..], &redactor, ScanLimits::default())
                .unwrap()
                .is_empty()
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(&data[..])
            .read_to_string(&mut text)
            .ok();
        assert!(!text.contains(SECRET));
    }
}
