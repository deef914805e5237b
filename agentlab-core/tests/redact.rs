//! Tests of `agentlab_core::redact`: raw values, base64/base64url (whole and embedded),
//! percent-encoding, values split across lines, overlapping values and Unicode.

#[cfg(test)]
mod tests {
    use agentlab_core::redact::{LineRedactor, MIN_SECRET_LEN, PLACEHOLDER, Redactor};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    const SECRET: &str = "sk-ant-Secr3t+/Value?&=";

    fn redactor() -> Redactor {
        Redactor::new(&[SECRET])
    }

    fn assert_clean(out: &str, needle: &str) {
        assert!(!out.contains(needle), "{needle:?} leaked in {out:?}");
    }

    #[test]
    fn raw_value_is_replaced() {
        let out = redactor().redact(&format!("key={SECRET} done"));
        assert_eq!(out, format!("key={PLACEHOLDER} done"));
    }

    #[test]
    fn every_occurrence_is_replaced() {
        let out = redactor().redact(&format!("{SECRET}{SECRET} and {SECRET}"));
        assert_eq!(out, format!("{PLACEHOLDER} and {PLACEHOLDER}"));
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "hello world\nline two\r\n  indented\n";
        assert_eq!(redactor().redact(text), text);
        assert_eq!(Redactor::new(&[]).redact(text), text);
        assert!(Redactor::new(&[]).is_empty());
    }

    #[test]
    fn short_values_are_ignored() {
        let short = "a".repeat(MIN_SECRET_LEN - 1);
        let r = Redactor::new(&[&short, ""]);
        assert!(r.is_empty());
        assert_eq!(r.redact("aaaaa bbbbb"), "aaaaa bbbbb");
        let exact = "b".repeat(MIN_SECRET_LEN);
        let r = Redactor::new(&[&exact]);
        assert_eq!(r.redact(&format!("x{exact}x")), format!("x{PLACEHOLDER}x"));
    }

    #[test]
    fn base64_forms_are_replaced() {
        let r = redactor();
        for encoded in [
            STANDARD.encode(SECRET),
            STANDARD_NO_PAD.encode(SECRET),
            URL_SAFE.encode(SECRET),
            URL_SAFE_NO_PAD.encode(SECRET),
        ] {
            let out = r.redact(&format!("token: {encoded} end"));
            assert_clean(&out, &encoded);
            assert!(out.contains(PLACEHOLDER), "{out}");
            assert!(out.starts_with("token: ") && out.ends_with(" end"), "{out}");
        }
    }

    #[test]
    fn base64_and_base64url_differ_for_this_secret() {
        // Guards the test above: the secret was chosen so that the alphabets differ.
        assert_ne!(STANDARD.encode(SECRET), URL_SAFE.encode(SECRET));
    }

    #[test]
    fn base64_embedded_in_a_longer_blob_at_every_alignment() {
        let r = redactor();
        for prefix in ["", "u", "us", "user:", "Authorization: Bearer "] {
            for suffix in ["", "x", "xy", "\n{\"more\":1}"] {
                let blob = format!("{prefix}{SECRET}{suffix}");
                for encoded in [STANDARD.encode(&blob), URL_SAFE_NO_PAD.encode(&blob)] {
                    let out = r.redact(&format!("Basic {encoded}"));
                    assert!(
                        out.contains(PLACEHOLDER),
                        "prefix {prefix:?} suffix {suffix:?}: {out}"
                    );
                    // What is left of the blob must not decode to anything containing the core
                    // of the secret.
                    let left = out.replace(PLACEHOLDER, "");
                    let removed = encoded.len() + "Basic ".len() - left.len();
                    assert!(removed >= SECRET.len() * 4 / 3 - 5, "{out}");
                }
            }
        }
    }

    #[test]
    fn percent_encoded_forms_are_replaced() {
        let r = redactor();
        for encoded in [
            "sk-ant-Secr3t%2B%2FValue%3F%26%3D",
            "sk-ant-Secr3t%2b%2fValue%3f%26%3d",
            "%73%6B%2D%61%6E%74%2D%53%65%63%72%33%74%2B%2F%56%61%6C%75%65%3F%26%3D",
        ] {
            let out = r.redact(&format!("GET /?k={encoded}&x=1"));
            assert_eq!(out, format!("GET /?k={PLACEHOLDER}&x=1"));
        }
    }

    #[test]
    fn form_encoding_with_plus_for_space_is_replaced() {
        let secret = "pass phrase with spaces!";
        let r = Redactor::new(&[secret]);
        let out = r.redact("body: pw=pass+phrase+with+spaces%21");
        assert_eq!(out, format!("body: pw={PLACEHOLDER}"));
        let out = r.redact("q=pass%20phrase%20with%20spaces!");
        assert_eq!(out, format!("q={PLACEHOLDER}"));
    }

    /// A secret with a space, `~`, `/`, quotes, a backslash and non-ASCII: every encoder
    /// below changes it.
    const WIDE: &str = "pa ss~wo/rd\"q'x\\é-end";

    /// `(what, encoded)` for every encoding the runner or common tools produce.
    fn encodings(secret: &str) -> Vec<(String, String)> {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        const PY_QUOTE: &AsciiSet = &RFC3986.remove(b'/');
        let mut out = vec![
            ("raw".to_owned(), secret.to_owned()),
            ("base64".to_owned(), STANDARD.encode(secret)),
            ("base64 no pad".to_owned(), STANDARD_NO_PAD.encode(secret)),
            ("base64url".to_owned(), URL_SAFE.encode(secret)),
            (
                "base64url no pad".to_owned(),
                URL_SAFE_NO_PAD.encode(secret),
            ),
            ("hex".to_owned(), hex::encode(secret)),
            ("HEX".to_owned(), hex::encode_upper(secret)),
            (
                "form (WHATWG, ~ as %7E)".to_owned(),
                form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            ),
            (
                "rfc3986".to_owned(),
                utf8_percent_encode(secret, RFC3986).to_string(),
            ),
            (
                "python quote".to_owned(),
                utf8_percent_encode(secret, PY_QUOTE).to_string(),
            ),
            (
                "python quote_plus".to_owned(),
                utf8_percent_encode(secret, RFC3986)
                    .to_string()
                    .replace("%20", "+"),
            ),
            (
                "every byte, lower".to_owned(),
                secret.bytes().map(|b| format!("%{b:02x}")).collect(),
            ),
            (
                "mixed-case hex digits".to_owned(),
                secret
                    .bytes()
                    .enumerate()
                    .map(|(i, b)| {
                        let h = format!("%{b:02x}");
                        if i % 2 == 0 { h.to_uppercase() } else { h }
                    })
                    .collect(),
            ),
            (
                "double percent-encoding".to_owned(),
                utf8_percent_encode(secret, RFC3986)
                    .to_string()
                    .replace('%', "%25"),
            ),
            ("json".to_owned(), {
                let j = serde_json::to_string(secret).unwrap();
                j[1..j.len() - 1].to_owned()
            }),
            (
                "json \\u00XX".to_owned(),
                secret
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_string()
                        } else {
                            format!("\\u{:04x}", u32::from(c))
                        }
                    })
                    .collect(),
            ),
            (
                "\\x escapes".to_owned(),
                secret.bytes().map(|b| format!("\\x{b:02X}")).collect(),
            ),
            (
                "shell backslash".to_owned(),
                secret
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || !c.is_ascii() {
                            c.to_string()
                        } else {
                            format!("\\{c}")
                        }
                    })
                    .collect(),
            ),
            (
                "shell single quotes".to_owned(),
                format!("'{}'", secret.replace('\'', "'\\''")),
            ),
            (
                "html".to_owned(),
                secret
                    .replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('\'', "&#39;")
                    .replace('<', "&lt;"),
            ),
        ];
        out.dedup_by(|a, b| a.1 == b.1);
        out
    }

    #[test]
    fn every_common_encoding_is_replaced() {
        let r = Redactor::new(&[WIDE, SECRET]);
        for secret in [WIDE, SECRET] {
            for (what, encoded) in encodings(secret) {
                let out = r.redact(&format!("k={encoded}&more"));
                let inner = encoded.trim_matches('\'');
                assert!(
                    !out.contains(inner) && out.contains(PLACEHOLDER),
                    "{what} of {secret:?} survived: {out}"
                );
                // Wrapped over lines too (a logger or `base64 -w`).
                let mut mid = encoded.len() / 2;
                while !encoded.is_char_boundary(mid) {
                    mid += 1;
                }
                let (a, b) = encoded.split_at(mid);
                let out = r.redact(&format!("{a}\n{b}"));
                assert!(!out.contains(inner), "{what} wrapped: {out}");
            }
        }
    }

    #[test]
    fn python_quote_plus_and_quote_are_replaced() {
        // The reported case: form encoding of a secret with a space and `~`, produced by the
        // real tools.
        let secret = "form secret~with space";
        let r = Redactor::new(&[secret]);
        let Ok(out) = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys,urllib.parse as u; s=sys.argv[1]; \
                 print(u.quote_plus(s)); print(u.quote(s)); print(u.quote(s, safe='')); \
                 print(u.urlencode({'k': s})); print(s.encode().hex()); \
                 import json; print(json.dumps(s)); print(repr(s.encode()))",
                secret,
            ])
            .output()
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 is required in CI"
            );
            eprintln!("SKIP python_quote_plus_and_quote_are_replaced: no python3");
            return;
        };
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), 7, "{text}");
        assert!(text.contains("form+secret~with+space"), "{text}");
        let red = r.redact(&text);
        for line in red.lines() {
            assert!(line.contains(PLACEHOLDER), "{line:?} in {red}");
            assert!(!line.contains("secret"), "{line:?} in {red}");
        }
    }

    #[test]
    fn base64_of_the_secret_at_every_offset_of_a_stream() {
        let r = Redactor::new(&[WIDE]);
        for pre in 0..6 {
            let blob = format!("{}{WIDE}{}", "p".repeat(pre), "s".repeat(pre % 4));
            let encoded = STANDARD.encode(&blob);
            let out = r.redact(&encoded);
            // The groups made only of secret bytes are gone.
            let (g0, g1) = (pre.div_ceil(3), (pre + WIDE.len()) / 3);
            let core = &encoded[g0 * 4..g1 * 4];
            for w in core.as_bytes().windows(8) {
                let w = std::str::from_utf8(w).unwrap();
                assert!(!out.contains(w), "offset {pre}: {w} in {out}");
            }
        }
    }

    #[test]
    fn decoded_but_different_text_is_not_redacted() {
        // Escapes that decode to something else are left alone.
        let r = Redactor::new(&["secret-value"]);
        for text in [
            "secret%2Dvaluf",
            "secret\\-valu",
            "secret+value",
            "736563726574",
        ] {
            assert_eq!(r.redact(text), text);
        }
    }

    #[test]
    fn value_split_across_lines_in_one_text() {
        let (a, b) = SECRET.split_at(9);
        let out = redactor().redact(&format!("start {a}\n{b} end\nnext"));
        assert_eq!(out, format!("start {PLACEHOLDER}\n{PLACEHOLDER} end\nnext"));
        let out = redactor().redact(&format!("start {a}\r\n{b} end"));
        assert_eq!(out, format!("start {PLACEHOLDER}\r\n{PLACEHOLDER} end"));
    }

    #[test]
    fn multi_line_value_printed_line_by_line() {
        let key = "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAA\nQABAAABAQC7\n-----END KEY-----\n";
        let r = Redactor::new(&[key]);
        let out = r.redact(&format!("cat key:\n{key}done"));
        for line in key.lines() {
            assert_clean(&out, line);
        }
        assert!(out.ends_with("done"));
        assert_eq!(
            out.lines().count(),
            format!("cat key:\n{key}done").lines().count()
        );
    }

    #[test]
    fn overlapping_and_nested_values() {
        let r = Redactor::new(&["abcdef123", "123ghijkl", "def123"]);
        let out = r.redact("xx abcdef123ghijkl yy def123 zz");
        assert_eq!(out, format!("xx {PLACEHOLDER} yy {PLACEHOLDER} zz"));
        // A value that overlaps itself.
        let r = Redactor::new(&["aaaaaa"]);
        assert_eq!(r.redact("baaaaaaab"), format!("b{PLACEHOLDER}b"));
    }

    #[test]
    fn unicode_values_and_text() {
        let secret = "pässwörd-🔑-秘密";
        let r = Redactor::new(&[secret]);
        let out = r.redact(&format!("ünïcode {secret} ✓"));
        assert_eq!(out, format!("ünïcode {PLACEHOLDER} ✓"));
        let pct: String = secret
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'-' {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        assert_eq!(r.redact(&pct), PLACEHOLDER);
        assert_eq!(r.redact(&STANDARD.encode(secret)), PLACEHOLDER);
        // Split in the middle of the text (at a char boundary) across lines.
        let (a, b) = secret.split_at(secret.char_indices().nth(8).unwrap().0);
        assert_eq!(
            r.redact(&format!("{a}\n{b}")),
            format!("{PLACEHOLDER}\n{PLACEHOLDER}")
        );
        // Short by chars even if long in bytes: ignored.
        assert!(Redactor::new(&["ü秘密🔑"]).is_empty());
    }

    #[test]
    fn from_bundle_covers_every_value() {
        let mut b = agentlab_core::SecretBundle::default();
        b.env
            .insert("A".into(), agentlab_core::SecretValue::new("env-value-123"));
        b.git = Some(agentlab_core::GitCredentials::Https {
            username: "user".into(),
            token: agentlab_core::SecretValue::new("git-token-456"),
        });
        let out = Redactor::from_bundle(&b).redact("env-value-123 git-token-456 user");
        assert_eq!(out, format!("{PLACEHOLDER} {PLACEHOLDER} user"));
    }

    #[test]
    fn debug_does_not_print_values() {
        let r = redactor();
        let dbg = format!("{r:?} {:?}", r.line_redactor());
        assert_clean(&dbg, SECRET);
        assert_clean(&dbg, "Secr3t");
    }

    fn run_stream(lr: &mut LineRedactor, lines: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for l in lines {
            out.extend(lr.push_line(l));
        }
        out.extend(lr.finish());
        out
    }

    #[test]
    fn stream_keeps_order_and_count() {
        let mut lr = redactor().line_redactor();
        let lines = ["one", "two", "", "three"];
        assert_eq!(run_stream(&mut lr, &lines), lines);
    }

    #[test]
    fn stream_redacts_value_split_over_pushed_lines() {
        for cut in 1..SECRET.len() {
            let (a, b) = SECRET.split_at(cut);
            let mut lr = redactor().line_redactor();
            let out = run_stream(
                &mut lr,
                &["before", &format!("x {a}"), &format!("{b} y"), "after"],
            );
            assert_eq!(
                out,
                [
                    "before".to_owned(),
                    format!("x {PLACEHOLDER}"),
                    format!("{PLACEHOLDER} y"),
                    "after".to_owned()
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn stream_redacts_value_split_over_many_short_lines() {
        let mut lr = redactor().line_redactor();
        let chunks: Vec<String> = SECRET
            .chars()
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|c| c.iter().collect())
            .collect();
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let out = run_stream(&mut lr, &refs);
        assert_eq!(out.len(), refs.len());
        assert!(out.iter().all(|l| l == PLACEHOLDER), "{out:?}");
    }

    #[test]
    fn stream_redacts_wrapped_base64() {
        // The secret occupies bytes 7..30 of the plaintext; groups 3..10 (chars 12..40) of the
        // encoding carry only secret bits.
        let blob = STANDARD.encode(format!("header {SECRET} trailer and some more text"));
        let mut lr = redactor().line_redactor();
        let wrapped: Vec<&str> = blob
            .as_bytes()
            .chunks(16)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let out = run_stream(&mut lr, &wrapped).join("");
        assert!(out.contains(PLACEHOLDER), "{out}");
        for window in blob.as_bytes()[12..40].windows(6) {
            assert_clean(&out, std::str::from_utf8(window).unwrap());
        }
    }

    #[test]
    fn stream_releases_lines_once_enough_text_follows() {
        let r = redactor();
        let mut lr = r.line_redactor();
        assert!(
            lr.push_line("first").is_empty(),
            "held until more text arrives"
        );
        let filler = "z".repeat(r.max_pattern_len());
        let out = lr.push_line(&filler);
        assert_eq!(out, vec!["first".to_owned()]);
        assert_eq!(lr.finish(), vec![filler]);
        assert!(lr.finish().is_empty());
    }

    #[test]
    fn stream_without_secrets_emits_immediately() {
        let mut lr = Redactor::new(&[]).line_redactor();
        assert_eq!(lr.push_line("a"), vec!["a".to_owned()]);
        assert_eq!(lr.push_line("b"), vec!["b".to_owned()]);
        assert!(lr.finish().is_empty());
    }

    #[test]
    fn stream_flush_emits_now_and_still_redacts_the_rest() {
        let (a, b) = SECRET.split_at(10);
        let mut lr = redactor().line_redactor();
        assert!(lr.push_line(&format!("p {a}")).is_empty());
        // Idle: flush emits the head unredacted (it is not a secret on its own yet)...
        assert_eq!(lr.flush(), vec![format!("p {a}")]);
        // ...but the rest of the value is still recognised and redacted.
        let mut out = lr.push_line(&format!("{b} q"));
        out.extend(lr.finish());
        assert_eq!(out, vec![format!("{PLACEHOLDER} q")]);
    }

    #[test]
    fn stream_redacts_whole_value_in_one_line() {
        let mut lr = redactor().line_redactor();
        let out = run_stream(
            &mut lr,
            &[&format!("a {SECRET} b"), &URL_SAFE.encode(SECRET)],
        );
        assert_eq!(
            out,
            vec![format!("a {PLACEHOLDER} b"), PLACEHOLDER.to_owned()]
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn secret_never_survives_in_any_form(
                secret in "[a-zA-Z0-9+/=?&%ü -]{6,40}",
                prefix in "[ -~]{0,20}",
                suffix in "[ -~]{0,20}",
                cut in 0usize..40,
            ) {
                let r = Redactor::new(&[&secret]);
                let text = format!("{prefix}{secret}{suffix}");
                let out = r.redact(&text);
                prop_assert!(!out.contains(&secret));
                let b64 = STANDARD.encode(&text);
                // Base64 groups made only of secret bytes must not survive inside the blob.
                let (p, n) = (prefix.len(), secret.len());
                let (g0, g1) = (p.div_ceil(3), (p + n) / 3);
                if g1 > g0 {
                    let core = &b64[g0 * 4..g1 * 4];
                    prop_assert!(!r.redact(&b64).contains(core), "{} in {}", core, b64);
                }
                // Split over two streamed lines at any char boundary.
                let cut = secret.char_indices().map(|(i, _)| i).nth(cut % secret.chars().count()).unwrap();
                let mut lr = r.line_redactor();
                let mut lines = lr.push_line(&format!("{prefix}{}", &secret[..cut]));
                lines.extend(lr.push_line(&format!("{}{suffix}", &secret[cut..])));
                lines.extend(lr.finish());
                prop_assert_eq!(lines.len(), 2);
                prop_assert!(!lines.concat().contains(&secret));
            }

            #[test]
            fn text_without_the_secret_is_unchanged(text in "[a-m \n]{0,200}") {
                // The secret uses letters the text never contains.
                let r = Redactor::new(&["zzqqxxyy"]);
                prop_assert_eq!(r.redact(&text), text.clone());
                let mut lr = r.line_redactor();
                let mut out = Vec::new();
                for line in text.split('\n') {
                    out.extend(lr.push_line(line));
                }
                out.extend(lr.finish());
                prop_assert_eq!(out.join("\n"), text);
            }
        }
    }
}
