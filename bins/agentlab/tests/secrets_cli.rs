//! `agentlab secrets …` run as a real process against files in temp directories.

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};

    const VALUE: &str = "sk-cli-DistinctiveSecret-98765";

    struct Env {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        identity: PathBuf,
    }

    fn env() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("secrets");
        let identity = tmp.path().join("age.key");
        Env {
            _tmp: tmp,
            dir,
            identity,
        }
    }

    /// Runs `agentlab secrets ARGS` with the store chosen through the environment variables.
    fn run(e: &Env, args: &[&str], stdin: Option<&str>) -> Output {
        run_with(&e.dir, &e.identity, args, stdin)
    }

    fn run_with(dir: &Path, identity: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentlab"));
        cmd.arg("secrets")
            .args(args)
            .env("AGENTLAB_SECRETS_DIR", dir)
            .env("AGENTLAB_IDENTITY", identity)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = stdin {
            // A command refused before it reads stdin closes the pipe: not a test failure.
            if let Err(e) = pipe.write_all(input.as_bytes()) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
            }
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    fn ok(out: &Output) -> String {
        assert!(
            out.status.success(),
            "failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout.clone()).unwrap()
    }

    fn failed(out: &Output) -> String {
        assert!(
            !out.status.success(),
            "unexpected success: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr.clone()).unwrap()
    }

    fn public_key(init_stdout: &str) -> String {
        init_stdout
            .lines()
            .find_map(|l| l.strip_prefix("Public key: "))
            .expect("init prints the public key")
            .to_owned()
    }

    #[test]
    fn init_set_env_show_and_reveal() {
        let e = env();
        let out = ok(&run(&e, &["init"], None));
        assert!(public_key(&out).starts_with("age1"), "{out}");
        assert_eq!(
            std::fs::metadata(&e.identity).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&e.dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(e.dir.join("default.age").is_file());

        ok(&run(
            &e,
            &["set-env", "API_KEY"],
            Some(&format!("{VALUE}\n")),
        ));
        let cipher = std::fs::read_to_string(e.dir.join("default.age")).unwrap();
        assert!(!cipher.contains(VALUE));

        let shown = run(&e, &["show"], None);
        let stdout = ok(&shown);
        assert!(
            stdout.contains("API_KEY") && stdout.contains("[REDACTED]"),
            "{stdout}"
        );
        assert!(!stdout.contains(VALUE));
        assert!(!String::from_utf8_lossy(&shown.stderr).contains(VALUE));

        let revealed = run(&e, &["show", "--reveal"], None);
        let stdout = ok(&revealed);
        // The trailing newline from stdin was dropped.
        assert!(stdout.contains(&format!("API_KEY: {VALUE}\n")), "{stdout}");
        let stderr = String::from_utf8_lossy(&revealed.stderr);
        assert!(stderr.contains("warning"), "{stderr}");

        assert_eq!(ok(&run(&e, &["list"], None)), "default\n");
    }

    #[test]
    fn value_is_never_taken_from_argv() {
        let e = env();
        ok(&run(&e, &["init"], None));
        let stderr = failed(&run(&e, &["set-env", "API_KEY", VALUE], Some("")));
        assert!(stderr.contains("unexpected argument"), "{stderr}");
        let stderr = failed(&run(&e, &["set-env", "API_KEY"], Some("")));
        assert!(stderr.contains("empty"), "{stderr}");
        let stderr = failed(&run(&e, &["set-env", "lower-case"], Some(VALUE)));
        assert!(
            stderr.contains("Invalid environment variable name"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }

    #[test]
    fn git_claude_file_and_rm_with_flags() {
        let e = env();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let identity = tmp.path().join("k");
        let flags = |rest: &[&str]| -> Vec<String> {
            let mut v = vec![
                "--dir".to_owned(),
                dir.display().to_string(),
                "--identity".to_owned(),
                identity.display().to_string(),
                "--bundle".to_owned(),
                "team-a".to_owned(),
            ];
            v.extend(rest.iter().map(|s| (*s).to_owned()));
            v
        };
        let go = |rest: &[&str], stdin: Option<&str>| {
            let args = flags(rest);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            // The environment points elsewhere: flags must win.
            run(&e, &refs, stdin)
        };
        ok(&go(&["init"], None));
        assert!(dir.join("team-a.age").is_file());
        ok(&go(
            &["set-git", "--username", "x-access-token"],
            Some("ghp_cliTokenValue\n"),
        ));
        ok(&go(
            &["set-claude"],
            Some(r#"{"apiKeyHelper":"claude-settings-secret"}"#),
        ));
        let stderr = failed(&go(&["set-claude"], Some("{broken")));
        assert!(stderr.contains("not valid JSON"), "{stderr}");
        ok(&go(
            &["add-file", "--path", "cfg/token.txt", "--mode", "640"],
            Some("file-secret-body"),
        ));
        let shown = ok(&go(&["show"], None));
        for hidden in [
            "ghp_cliTokenValue",
            "claude-settings-secret",
            "file-secret-body",
        ] {
            assert!(!shown.contains(hidden), "{shown}");
        }
        assert!(
            shown.contains("x-access-token") && shown.contains("cfg/token.txt"),
            "{shown}"
        );

        ok(&go(&["rm", "--git"], None));
        ok(&go(&["rm", "--file", "cfg/token.txt"], None));
        let stderr = failed(&go(&["rm", "NOPE"], None));
        assert!(stderr.contains("has no env var"), "{stderr}");
        let shown = ok(&go(&["show", "--reveal"], None));
        assert!(
            !shown.contains("x-access-token") && !shown.contains("cfg/token.txt"),
            "{shown}"
        );
        assert!(shown.contains("claude-settings-secret"), "{shown}");
        assert!(!e.dir.exists(), "environment defaults were not used");
    }

    #[test]
    fn rotate_to_new_recipient_then_load_with_new_identity() {
        let e = env();
        ok(&run(&e, &["init"], None));
        ok(&run(&e, &["set-env", "API_KEY"], Some(VALUE)));
        // A second identity elsewhere, e.g. on another host.
        let other = tempfile::tempdir().unwrap();
        let new_identity = other.path().join("new.key");
        let new_pub = public_key(&ok(&run_with(
            &other.path().join("s"),
            &new_identity,
            &["init"],
            None,
        )));

        let stderr = failed(&run(&e, &["rotate", "--recipient", "age1notakey"], None));
        assert!(stderr.contains("Invalid recipient"), "{stderr}");

        let out = run(&e, &["rotate", "--recipient", &new_pub], None);
        let stdout = ok(&out);
        assert!(stdout.contains("Re-encrypted 1 bundle(s)"), "{stdout}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("can no longer decrypt"));

        let shown = ok(&run_with(
            &e.dir,
            &new_identity,
            &["show", "--reveal"],
            None,
        ));
        assert!(shown.contains(VALUE), "{shown}");
        let stderr = failed(&run(&e, &["show"], None));
        assert!(stderr.contains("Cannot decrypt"), "{stderr}");
        assert!(!stderr.contains(VALUE));
    }

    #[test]
    fn refuses_group_readable_identity() {
        let e = env();
        ok(&run(&e, &["init"], None));
        ok(&run(&e, &["set-env", "API_KEY"], Some(VALUE)));
        std::fs::set_permissions(&e.identity, std::fs::Permissions::from_mode(0o644)).unwrap();
        let stderr = failed(&run(&e, &["show"], None));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&e.identity.display().to_string()),
            "{stderr}"
        );
        assert!(stderr.contains("chmod 600"), "{stderr}");
        assert!(!stderr.contains(VALUE));
        let stderr = failed(&run(&e, &["set-env", "OTHER"], Some(VALUE)));
        assert!(stderr.contains("chmod 600"), "{stderr}");
    }

    #[test]
    fn missing_bundle_and_identity_errors_are_one_line() {
        let e = env();
        let stderr = failed(&run(&e, &["show"], None));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        ok(&run(&e, &["init"], None));
        let stderr = failed(&run(&e, &["set-env", "--bundle", "nope", "K"], Some(VALUE)));
        assert!(
            stderr.contains("not found") && stderr.contains("init --bundle nope"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
