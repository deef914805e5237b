//! Property-based fuzzing (stable `proptest`) of every parser in agentlab-core that takes
//! untrusted input: profile YAML, daemon config YAML, the guest API bodies, artifact tarballs
//! (the archive scanner and rewriter the daemon runs on uploads) and the redactor itself.
//!
//! Inputs are both arbitrary bytes/text and mutations of valid seeds (so the parsers get past
//! their first byte). Properties: no panic, a typed error (with a message) on bad input,
//! round trips where they exist, and no secret value in any output. `PROPTEST_CASES` bounds
//! the run (default 256 cases per property, each property well under 30 s in a debug build).

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use agentlab_core::api::guest::{
        ArtifactReceipt, BootstrapFetchRequest, BootstrapPayload, LogBatch, StatusReport,
    };
    use agentlab_core::config::Config;
    use agentlab_core::profile::Profiles;
    use agentlab_core::redact::archive::{ScanLimits, sanitize_tar_gz, scan};
    use agentlab_core::redact::{PLACEHOLDER, Redactor};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;

    /// A mutation of a seed text: (position fraction, kind, payload).
    fn mutate(seed: &str, edits: &[(f64, u8, String)]) -> String {
        let mut s: Vec<char> = seed.chars().collect();
        for (at, kind, payload) in edits {
            let pos = ((s.len() as f64) * at) as usize;
            let pos = pos.min(s.len());
            match kind % 4 {
                0 => s.splice(pos..pos, payload.chars()).for_each(drop),
                1 => {
                    let end = (pos + payload.len()).min(s.len());
                    s.drain(pos..end).for_each(drop);
                }
                2 => {
                    let end = (pos + payload.len()).min(s.len());
                    let dup: Vec<char> = s[pos..end].to_vec();
                    s.splice(pos..pos, dup).for_each(drop);
                }
                _ => {
                    let end = (pos + payload.chars().count()).min(s.len());
                    s.splice(pos..end, payload.chars()).for_each(drop);
                }
            }
        }
        s.into_iter().collect()
    }

    /// Text fragments that matter to YAML and JSON.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,12}",
            Just("\n".to_owned()),
            Just(": ".to_owned()),
            Just("- ".to_owned()),
            Just("  ".to_owned()),
            Just("[[[[{{{{".to_owned()),
            Just("&a *a".to_owned()),
            Just("!!binary ".to_owned()),
            Just("<<: *a".to_owned()),
            Just("'\"\\".to_owned()),
            Just("\n---\n".to_owned()),
            Just("\u{0}\u{feff}é🔑".to_owned()),
            Just("99999999999999999999999".to_owned()),
            Just("-1".to_owned()),
            Just("null".to_owned()),
            Just("|\n  x".to_owned()),
        ]
    }

    fn edits() -> impl Strategy<Value = Vec<(f64, u8, String)>> {
        prop::collection::vec((0.0f64..1.0, any::<u8>(), fragment()), 1..6)
    }

    const PROFILES_SEED: &str = include_str!("../../profiles/defaults.yaml");

    const TOKEN_SECRET: &str = "pve-token-secret-0d6f2b";

    fn config_seed() -> String {
        format!(
            "socket: /run/agentlab/agentlabd.sock\ndata_dir: /var/lib/agentlab\nbackend: pve\n\
             guest:\n  listen: 127.0.0.1:8844\npve:\n  url: https://pve.example:8006\n  \
             node: pve1\n  token_id: agentlab@pve!t\n  token_secret: {TOKEN_SECRET}\n  \
             storage: local-lvm\nnetwork:\n  manage_firewall: false\n"
        )
    }

    mod yaml_parsers {
        use super::*;

        #[test]
        fn seeds_are_valid() {
            assert!(Profiles::from_yaml_str(PROFILES_SEED, "seed").is_ok());
            assert!(Profiles::validate_yaml(PROFILES_SEED).is_ok());
            Config::from_yaml_str(&config_seed(), "seed").unwrap();
        }

        #[test]
        fn deep_nesting_is_a_typed_error() {
            let deep = "[".repeat(2_000);
            let e = Profiles::from_yaml_str(&deep, "deep").unwrap_err();
            assert!(!e.to_string().is_empty());
            assert!(Config::from_yaml_str(&format!("socket: {deep}"), "deep").is_err());
        }

        proptest! {
            #[test]
            fn profiles_arbitrary_text(text in "\\PC{0,400}") {
                if let Err(e) = Profiles::from_yaml_str(&text, "fuzz") {
                    prop_assert!(!e.to_string().is_empty());
                }
                let _ = Profiles::validate_yaml(&text);
            }

            #[test]
            fn profiles_mutated(edits in edits()) {
                let text = mutate(PROFILES_SEED, &edits);
                match Profiles::from_yaml_str(&text, "fuzz") {
                    Ok(p) => {
                        // Whatever parsed must validate the same way through the body route.
                        let listed = Profiles::validate_yaml(&text);
                        prop_assert!(listed.is_ok(), "{:?}", listed.err());
                        prop_assert_eq!(listed.unwrap_or_default().len(), p.len());
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }

            #[test]
            fn config_arbitrary_text(text in "\\PC{0,400}") {
                if let Err(e) = Config::from_yaml_str(&text, "fuzz") {
                    prop_assert!(!e.to_string().is_empty());
                }
            }

            #[test]
            fn config_mutated_never_echoes_the_token_secret(edits in edits()) {
                let text = mutate(&config_seed(), &edits);
                match Config::from_yaml_str(&text, "fuzz") {
                    Ok(c) => {
                        let dbg = format!("{c:?}");
                        prop_assert!(!dbg.contains(TOKEN_SECRET));
                    }
                    Err(e) => {
                        let msg = format!("{e} {e:?}");
                        prop_assert!(!msg.is_empty());
                        prop_assert!(!msg.contains(TOKEN_SECRET), "{}", msg);
                    }
                }
            }
        }
    }

    mod guest_bodies {
        use super::*;

        fn payload_seed() -> String {
            serde_json::json!({
                "job": {"job_id": "job-0123456789abcdef", "repo": "https://example.invalid/r.git",
                        "git_ref": null, "task": "t", "agent": {"command": "true", "preset": null},
                        "mode": "yolo", "timeout_secs": 60, "clone_path": "/tmp/r",
                        "work_branch": "agentlab/x"},
                "secrets": {"env": {"K": "secret-value-123456"}},
                "runner_token": "runner-token-abcdef123456",
                "status_url": "http://h/s", "logs_url": "http://h/l", "artifacts_url": "http://h/a",
                "policy": {"inner_sandbox": "none", "inner_sandbox_args": []},
                "artifacts": {"upload": true, "max_bytes": 1000}
            })
            .to_string()
        }

        const SEEDS: &[&str] = &[
            r#"{"token":"abc"}"#,
            r#"{"state":"running","step":"clone","exit_code":null,"summary":"s"}"#,
            r#"{"state":"completed","exit_code":0,"duration_ms":5,"commit":"abc","failed_step":null,"error":null}"#,
            r#"{"lines":[{"stream":"stdout","line":"x"},{"stream":"runner","line":"\u001b[31m"}]}"#,
            r#"{"name":"a.tar.gz","size":3,"sha256":"00"}"#,
        ];

        /// Parses `body` as every guest API type; re-encodes what parses and checks it again.
        fn parse_all(body: &[u8]) -> Result<(), TestCaseError> {
            fn one<T>(body: &[u8]) -> Result<(), TestCaseError>
            where
                T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
            {
                match serde_json::from_slice::<T>(body) {
                    Ok(v) => {
                        let again: T = serde_json::from_slice(&serde_json::to_vec(&v).unwrap())
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(again, v);
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
                Ok(())
            }
            one::<StatusReport>(body)?;
            one::<LogBatch>(body)?;
            one::<BootstrapFetchRequest>(body)?;
            one::<ArtifactReceipt>(body)?;
            if let Ok(p) = serde_json::from_slice::<BootstrapPayload>(body) {
                // The payload's Debug never shows its secrets.
                let dbg = format!("{p:?}");
                prop_assert!(
                    !dbg.contains(p.runner_token.expose()) || p.runner_token.expose().len() < 6
                );
            }
            Ok(())
        }

        #[test]
        fn seeds_parse() {
            assert!(serde_json::from_str::<BootstrapPayload>(&payload_seed()).is_ok());
            assert!(serde_json::from_str::<LogBatch>(SEEDS[3]).is_ok());
        }

        #[test]
        fn deep_nesting_is_a_typed_error() {
            let deep = format!("{{\"lines\":{}", "[".repeat(100_000));
            assert!(serde_json::from_str::<LogBatch>(&deep).is_err());
        }

        proptest! {
            #[test]
            fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
                parse_all(&body)?;
            }

            #[test]
            fn mutated_seeds(seed in 0usize..6, edits in edits()) {
                let seed = if seed == 5 { payload_seed() } else { SEEDS[seed].to_owned() };
                parse_all(mutate(&seed, &edits).as_bytes())?;
            }
        }
    }

    mod archives {
        use super::*;

        const SECRET: &str = "fuzz secret~value/+9";

        fn gz(data: &[u8]) -> Vec<u8> {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }

        fn tar(members: &[(String, Vec<u8>)]) -> Vec<u8> {
            let mut b = tar::Builder::new(Vec::new());
            for (name, data) in members {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, name, &data[..]).unwrap();
            }
            b.into_inner().unwrap()
        }

        /// The secret in one of several encodings.
        fn encoded(kind: u8) -> String {
            match kind % 5 {
                0 => SECRET.to_owned(),
                1 => STANDARD.encode(SECRET),
                2 => SECRET
                    .replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace(' ', "+"),
                3 => hex::encode(SECRET),
                _ => URL_SAFE_NO_PAD.encode(SECRET),
            }
        }

        /// A member: (name, content, holds the secret, wrap in gzip, wrap in tar.gz).
        fn member() -> impl Strategy<Value = (String, Vec<u8>, bool, u8)> {
            (
                "[a-z]{1,8}(/[a-z]{1,8})?\\.(txt|bin|gz)",
                "[ -~\n]{0,200}",
                any::<bool>(),
                any::<u8>(),
            )
                .prop_map(|(name, mut text, secret, wrap)| {
                    if secret {
                        let at = text.len() / 2;
                        text.insert_str(at, &format!(" {} ", encoded(wrap)));
                    }
                    let bytes = text.into_bytes();
                    let data = match wrap % 3 {
                        0 => bytes,
                        1 => gz(&bytes),
                        _ => gz(&tar(&[("inner.txt".to_owned(), bytes)])),
                    };
                    (name, data, secret, wrap)
                })
        }

        fn unpack_all(data: &[u8], out: &mut Vec<u8>) {
            out.extend_from_slice(data);
            if data.starts_with(&[0x1f, 0x8b]) {
                let mut inner = Vec::new();
                if flate2::read::MultiGzDecoder::new(data)
                    .read_to_end(&mut inner)
                    .is_ok()
                {
                    unpack_all(&inner, out);
                }
            } else if data.len() >= 512 && &data[257..262] == b"ustar" {
                let mut ar = tar::Archive::new(data);
                if let Ok(entries) = ar.entries() {
                    for mut e in entries.flatten() {
                        let mut body = Vec::new();
                        if e.read_to_end(&mut body).is_ok() {
                            unpack_all(&body, out);
                        }
                    }
                }
            }
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(
                body in prop::collection::vec(any::<u8>(), 0..2048),
                gzip in any::<bool>(),
            ) {
                let r = Redactor::new(&[SECRET]);
                let data = if gzip { gz(&body) } else { body };
                let limits = ScanLimits { max_total_bytes: 1 << 20, ..ScanLimits::default() };
                let _ = scan(&data[..], &r, limits);
                let _ = sanitize_tar_gz(&data[..], Vec::new(), &r, &[], limits);
            }

            #[test]
            fn findings_are_complete_and_sanitize_removes_every_one(
                members in prop::collection::vec(member(), 1..6),
            ) {
                let r = Redactor::new(&[SECRET]);
                let list: Vec<(String, Vec<u8>)> = members
                    .iter()
                    .enumerate()
                    .map(|(i, (n, d, _, _))| (format!("{i}/{n}"), d.clone()))
                    .collect();
                let data = gz(&tar(&list));
                let findings = scan(&data[..], &r, ScanLimits::default()).unwrap();
                for (i, (_, _, secret, _)) in members.iter().enumerate() {
                    let hit = findings.iter().any(|f| f.member.starts_with(&format!("{i}/")));
                    prop_assert_eq!(hit, *secret, "member {} findings {:?}", i, findings);
                }
                let mut out = Vec::new();
                sanitize_tar_gz(&data[..], &mut out, &r, &findings, ScanLimits::default()).unwrap();
                prop_assert!(scan(&out[..], &r, ScanLimits::default()).unwrap().is_empty());
                let mut everything = Vec::new();
                unpack_all(&out, &mut everything);
                let text = String::from_utf8_lossy(&everything);
                for kind in 0..5 {
                    prop_assert!(!text.contains(&encoded(kind)));
                }
            }

            #[test]
            fn corrupted_archives_give_a_result(
                members in prop::collection::vec(member(), 1..4),
                flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..8),
            ) {
                let list: Vec<(String, Vec<u8>)> =
                    members.into_iter().map(|(n, d, _, _)| (n, d)).collect();
                let mut data = gz(&tar(&list));
                for (at, b) in flips {
                    let i = ((data.len() as f64) * at) as usize % data.len();
                    data[i] ^= b | 1;
                }
                let r = Redactor::new(&[SECRET]);
                match scan(&data[..], &r, ScanLimits::default()) {
                    Ok(_) => {}
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
        }
    }

    mod redactor {
        use super::*;

        /// Independent encoders (standard crates, not the redactor's code).
        fn encode(secret: &str, kind: u8) -> String {
            use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
            let b = secret.as_bytes();
            match kind % 11 {
                0 => secret.to_owned(),
                1 => STANDARD.encode(b),
                2 => URL_SAFE_NO_PAD.encode(b),
                3 => form_urlencoded::byte_serialize(b).collect(),
                4 => utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
                5 => b
                    .iter()
                    .map(|&x| {
                        if x.is_ascii_alphanumeric() {
                            char::from(x).to_string()
                        } else {
                            format!("%{x:02x}")
                        }
                    })
                    .collect(),
                6 => hex::encode(b),
                7 => hex::encode_upper(b),
                8 => {
                    let j = serde_json::to_string(secret).unwrap_or_default();
                    j[1..j.len() - 1].to_owned()
                }
                9 => secret
                    .encode_utf16()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect(),
                _ => b.iter().map(|x| format!("\\x{x:02x}")).collect(),
            }
        }

        proptest! {
            #[test]
            fn arbitrary_text_never_panics(
                text in "\\PC{0,300}",
                secrets in prop::collection::vec("\\PC{0,20}", 0..4),
            ) {
                let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
                let r = Redactor::new(&refs);
                let out = r.redact(&text);
                let _ = r.finds(&text);
                let mut lr = r.line_redactor();
                for line in text.split('\n') {
                    lr.push_line(line);
                }
                lr.flush();
                lr.finish();
                // Redaction is idempotent.
                prop_assert_eq!(r.redact(&out), out.clone());
            }

            #[test]
            fn no_registered_secret_survives_in_any_covered_encoding(
                secret in "[a-zA-Z0-9 ~/+!?&=%\"'\\\\é🔑-]{6,24}",
                prefix in "[ -~]{0,30}",
                suffix in "[ -~]{0,30}",
                kind in any::<u8>(),
                wrap in 0usize..40,
            ) {
                let r = Redactor::new(&[&secret, "another-secret-value"]);
                let enc = encode(&secret, kind);
                let text = format!("{prefix}{enc}{suffix}");
                let out = r.redact(&text);
                prop_assert!(!out.contains(&enc), "kind {}: {} -> {}", kind % 11, text, out);
                prop_assert!(out.contains(PLACEHOLDER));
                prop_assert!(r.finds(&text));
                // Wrapped at any char boundary, through the stream redactor.
                let cut = text
                    .char_indices()
                    .map(|(i, _)| i)
                    .nth(wrap % text.chars().count().max(1))
                    .unwrap_or(0);
                let mut lr = r.line_redactor();
                let mut lines = lr.push_line(&text[..cut]);
                lines.extend(lr.push_line(&text[cut..]));
                lines.extend(lr.finish());
                prop_assert!(!lines.concat().contains(&enc), "{:?}", lines);
            }
        }
    }
}
