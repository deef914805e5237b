//! `--json` honoured by `agentlab secrets`, `net` and `local`: one JSON document on stdout,
//! errors one JSON line on stderr.

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::path::Path;
    use std::process::{Command, Output, Stdio};

    fn agentlab(args: &[&str], env: &[(&str, &Path)], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agentlab"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Asserts success and that stdout is exactly one JSON document.
    fn doc(out: &Output) -> serde_json::Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not one JSON document ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    #[test]
    fn secrets_commands_print_json() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("secrets");
        let identity = tmp.path().join("age.key");
        let env = [
            ("AGENTLAB_SECRETS_DIR", dir.as_path()),
            ("AGENTLAB_IDENTITY", identity.as_path()),
        ];
        let run = |args: &[&str], stdin: &str| {
            let mut full = vec!["--json", "secrets"];
            full.extend_from_slice(args);
            agentlab(&full, &env, stdin)
        };
        let init = doc(&run(&["init"], ""));
        assert_eq!(init["bundle"], "default");
        assert_eq!(init["bundle_created"], true);
        assert_eq!(init["identity_created"], true);
        let key = init["public_keys"][0].as_str().unwrap().to_owned();
        assert!(key.starts_with("age1"), "{init}");

        let secret = "sk-json-DistinctiveSecret-4242";
        let set = doc(&run(&["set-env", "API_KEY"], secret));
        assert_eq!(
            set,
            serde_json::json!({"bundle": "default", "set": "env", "key": "API_KEY"})
        );
        assert_eq!(doc(&run(&["list"], "")), serde_json::json!(["default"]));
        assert_eq!(doc(&run(&["public-key"], "")), serde_json::json!([key]));

        let out = run(&["show"], "");
        let shown = doc(&out);
        assert_eq!(shown["bundle"], "default");
        assert_eq!(shown["revealed"], false);
        assert!(shown["content"]["env"]["API_KEY"].is_string(), "{shown}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
        let revealed = doc(&run(&["show", "--reveal"], ""));
        assert_eq!(revealed["content"]["env"]["API_KEY"], secret);

        let rm = doc(&run(&["rm", "API_KEY"], ""));
        assert_eq!(
            rm,
            serde_json::json!({"bundle": "default", "removed": "API_KEY"})
        );

        // An error is one JSON line on stderr, nothing on stdout.
        let out = run(&["show", "--bundle", "missing"], "");
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(err["error"]["code"], "cli_error");
    }

    #[test]
    fn net_plan_prints_json() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "backend: fake\nsocket: {d}/sock\ndata_dir: {d}\nnetwork: {{uplink: lo}}\n",
                d = tmp.path().display()
            ),
        )
        .unwrap();
        let out = agentlab(
            &[
                "--json",
                "net",
                "plan",
                "--config",
                config.to_str().unwrap(),
            ],
            &[],
            "",
        );
        let plan = doc(&out);
        assert!(
            plan["ruleset"].as_str().unwrap().contains("table"),
            "{plan}"
        );
    }

    #[test]
    fn local_image_build_errors_are_json() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = tmp.path().join("missing.yaml");
        let out_dir = tmp.path().join("out");
        let out = agentlab(
            &[
                "--json",
                "local",
                "image",
                "build",
                "--spec",
                spec.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
            ],
            &[],
            "",
        );
        assert!(!out.status.success());
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap_or_else(|e| {
            panic!(
                "stderr is not one JSON line ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("missing.yaml"),
            "{err}"
        );
    }
}
