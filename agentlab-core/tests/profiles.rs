//! Profile loading: the shipped profiles, strict parsing, error quality and validation rules.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use agentlab_core::config::Config;
    use agentlab_core::firewall::Egress;
    use agentlab_core::profile::{
        AgentMode, AgentPreset, NetworkMode, ProfileError, Profiles, WorkspaceMode,
    };
    use agentlab_core::yaml::ErrorKind;

    fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles")
    }

    /// A minimal valid profile document.
    fn base(name: &str) -> String {
        format!(
            "name: {name}\ntemplate_vmid: 9000\nresources:\n  cores: 2\n  memory_mb: 2048\nagent:\n  preset: claude\n"
        )
    }

    fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load_err(text: &str) -> ProfileError {
        Profiles::from_yaml_str(text, "test.yaml").expect_err("profile should be rejected")
    }

    #[test]
    fn all_three_shipped_profiles_load() {
        let profiles = Profiles::load_dir(&shipped_dir()).unwrap();
        assert_eq!(
            profiles.names(),
            vec!["interactive-dev", "yolo-ephemeral", "yolo-workspace"]
        );

        let eph = profiles.get("yolo-ephemeral").unwrap();
        assert!(!eph.behavior.keepalive_default);
        assert_eq!(eph.behavior.ttl_minutes_default, 60);
        assert_eq!(eph.behavior.effective_job_timeout_minutes(), 55);
        assert_eq!(eph.storage.workspace, WorkspaceMode::None);
        assert_eq!(eph.agent.preset, Some(AgentPreset::Claude));
        assert_eq!(eph.template_vmid, 9000);
        assert_eq!(eph.network.bridge, "vmbr1");
        assert_eq!(eph.network.egress(), Egress::Nat);
        assert_eq!(eph.pinned_node(), None);

        let ws = profiles.get("yolo-workspace").unwrap();
        assert!(ws.behavior.keepalive_default);
        assert_eq!(ws.behavior.ttl_minutes_default, 240);
        assert_eq!(ws.storage.workspace, WorkspaceMode::Attach);
        assert_eq!(ws.storage.workspace_size_gb, Some(20));

        let dev = profiles.get("interactive-dev").unwrap();
        assert_eq!(dev.behavior.mode, AgentMode::Interactive);
        assert!(dev.behavior.keepalive_default);
        assert_eq!(dev.behavior.ttl_minutes_default, 480);
        assert_eq!(dev.behavior.idle_stop_minutes, Some(60));
        assert_eq!(dev.storage.workspace, WorkspaceMode::Attach);

        let origin = profiles.origin("interactive-dev").unwrap();
        assert!(origin.ends_with("defaults.yaml"), "{origin}");
    }

    #[test]
    fn typo_names_file_document_field_and_suggestion() {
        let dir = tempfile::tempdir().unwrap();
        let bad = base("second").replace("memory_mb", "memroy_mb");
        let text = format!("# two profiles\n---\n{}---\n{bad}", base("first"));
        let path = write(dir.path(), "bad.yaml", &text);

        let err = Profiles::load_dir(dir.path()).unwrap_err();
        let d = &err.details;
        assert_eq!(d.kind, ErrorKind::UnknownField);
        assert_eq!(d.file, path.display().to_string());
        assert_eq!(d.document, Some(2));
        assert_eq!(d.field.as_deref(), Some("resources.memroy_mb"));
        assert_eq!(d.suggestion.as_deref(), Some("memory_mb"));
        // Line 1 header, 2 `---`, 3..=9 first profile, 10 `---`, 11 name, 12 template, 13 resources,
        // 14 cores, 15 the typo.
        assert_eq!((d.line, d.column), (Some(15), Some(3)));
        assert!(d.expected.contains(&"cores".to_owned()));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: document 2: field resources.memroy_mb (line 15, column 3): unknown field; \
             did you mean memory_mb?",
                path.display()
            )
        );

        let json = serde_json::to_value(&err.details).unwrap();
        assert_eq!(json["kind"], "unknown_field");
        assert_eq!(json["document"], 2);
        assert_eq!(json["field"], "resources.memroy_mb");
        assert_eq!(json["suggestion"], "memory_mb");
    }

    #[test]
    fn duplicate_names_across_files_name_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.yaml", &base("same"));
        let b = write(
            dir.path(),
            "b.yml",
            &format!("---\n{}---\n{}", base("other"), base("same")),
        );
        let err = Profiles::load_dir(dir.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Duplicate);
        assert_eq!(err.details.file, b.display().to_string());
        assert_eq!(err.details.document, Some(2));
        assert_eq!(err.details.field.as_deref(), Some("name"));
        assert_eq!(err.details.line, Some(10));
        let msg = err.to_string();
        assert!(msg.contains(&a.display().to_string()), "{msg}");
        assert!(msg.contains(&b.display().to_string()), "{msg}");

        // Within one text as well.
        let err = load_err(&format!("{}---\n{}", base("x"), base("x")));
        assert_eq!(err.kind(), ErrorKind::Duplicate);
    }

    #[test]
    fn comment_only_and_empty_documents_are_skipped() {
        let text = format!(
            "# header\n---\n# disabled for now\n#name: old\n---\n{}---\n\n---\n{}...\n# trailer\n",
            base("one"),
            base("two")
        );
        let profiles = Profiles::from_yaml_str(&text, "multi.yaml").unwrap();
        assert_eq!(profiles.names(), vec!["one", "two"]);
        assert_eq!(profiles.len(), 2);

        // Skipped documents still count for the document index of later errors.
        let broken = text.replace("name: two", "name: two\nbogus: 1");
        let err = load_err(&broken);
        assert_eq!(err.details.document, Some(4));
        assert_eq!(err.details.field.as_deref(), Some("bogus"));

        // An empty directory and a file of comments only give no profiles.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "empty.yaml", "# nothing here\n");
        assert!(Profiles::load_dir(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn only_yaml_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", &base("a"));
        write(dir.path(), "b.yml", &base("b"));
        write(dir.path(), "c.yaml.bak", "not: [valid");
        write(dir.path(), ".hidden.yaml", "not: [valid");
        write(dir.path(), "README.md", "# profiles");
        let profiles = Profiles::load_dir(dir.path()).unwrap();
        assert_eq!(profiles.names(), vec!["a", "b"]);

        let err = Profiles::load_dir(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
    }

    #[test]
    fn firewall_group_is_rejected_as_not_supported() {
        let text = base("fw").replace(
            "resources:",
            "network:\n  firewall_group: agents\nresources:",
        );
        let err = load_err(&text);
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert_eq!(err.details.field.as_deref(), Some("network.firewall_group"));
        assert_eq!(err.details.line, Some(4));
        let msg = err.to_string();
        assert!(msg.contains("not supported yet"), "{msg}");
        assert!(msg.contains("nftables"), "{msg}");
    }

    #[test]
    fn semantic_rules_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("cores: 2", "cores: 0", "resources.cores"),
            ("memory_mb: 2048", "memory_mb: 64", "resources.memory_mb"),
            (
                "memory_mb: 2048",
                "memory_mb: 2048\n  cpulimit: 3.5",
                "resources.cpulimit",
            ),
            (
                "memory_mb: 2048",
                "memory_mb: 2048\n  balloon: 4096",
                "resources.balloon",
            ),
            ("name: p", "name: Bad_Name", "name"),
            ("template_vmid: 9000", "template_vmid: 5", "template_vmid"),
            (
                "agent:\n",
                "behavior:\n  ttl_minutes_default: 0\nagent:\n",
                "behavior.ttl_minutes_default",
            ),
            (
                "agent:\n",
                "behavior:\n  ttl_minutes_default: 30\n  job_timeout_minutes: 30\nagent:\n",
                "behavior.job_timeout_minutes",
            ),
            (
                "agent:\n",
                "behavior:\n  idle_stop_minutes: 0\nagent:\n",
                "behavior.idle_stop_minutes",
            ),
            (
                "agent:\n",
                "behavior:\n  inner_sandbox_args: [--unshare-all]\nagent:\n",
                "behavior.inner_sandbox_args",
            ),
            (
                "agent:\n",
                "storage:\n  workspace: attach\nagent:\n",
                "storage.workspace_size_gb",
            ),
            (
                "agent:\n",
                "storage:\n  workspace_size_gb: 5\nagent:\n",
                "storage.workspace_size_gb",
            ),
            (
                "agent:\n",
                "network:\n  mode: allowlist\nagent:\n",
                "network.allowlist",
            ),
            (
                "agent:\n",
                "network:\n  allowlist: [github.com]\nagent:\n",
                "network.allowlist",
            ),
            (
                "agent:\n",
                "network:\n  model: virtio-net\nagent:\n",
                "network.model",
            ),
            (
                "agent:\n",
                "network:\n  bridge: a-very-long-bridge-name\nagent:\n",
                "network.bridge",
            ),
            (
                "agent:\n",
                "repo:\n  clone_path: repo\nagent:\n",
                "repo.clone_path",
            ),
            (
                "agent:\n",
                "artifacts:\n  retention_days: 0\nagent:\n",
                "artifacts.retention_days",
            ),
            (
                "agent:\n",
                "secrets_bundle: ../etc\nagent:\n",
                "secrets_bundle",
            ),
            (
                "  preset: claude",
                "  preset: claude\n  command: my-agent",
                "agent",
            ),
            ("  preset: claude", "  command: '  '", "agent.command"),
            (
                "agent:\n",
                "ssh_public_keys:\n  - 'ssh-ed25519 !!notbase64'\nagent:\n",
                "ssh_public_keys[0]",
            ),
        ];
        for (from, to, field) in cases {
            let text = base("p").replacen(from, to, 1);
            assert_ne!(text, base("p"), "case {to:?} did not apply");
            let err = load_err(&text);
            assert_eq!(
                err.details.field.as_deref(),
                Some(*field),
                "case {to:?}: {err}"
            );
            assert_eq!(err.details.document, Some(1));
            assert!(err.details.line.is_some(), "case {to:?}: no line in {err}");
        }

        // The agent section needs one of its two keys.
        let err = load_err(
            &base("p")
                .replace("  preset: claude\n", "  {}\n")
                .replace("agent:\n  {}", "agent: {}"),
        );
        assert_eq!(err.details.field.as_deref(), Some("agent"));
    }

    #[test]
    fn allowlist_entries_are_checked_and_located() {
        let text = base("al").replace(
        "agent:",
        "network:\n  mode: allowlist\n  allowlist:\n    - 140.82.112.0/20\n    - not a host\nagent:",
    );
        let err = load_err(&text);
        assert_eq!(err.details.field.as_deref(), Some("network.allowlist[1]"));
        assert_eq!((err.details.line, err.details.column), (Some(10), Some(7)));

        let ok = text.replace("not a host", "api.github.com");
        let profiles = Profiles::from_yaml_str(&ok, "ok.yaml").unwrap();
        let p = profiles.get("al").unwrap();
        assert_eq!(p.network.mode, NetworkMode::Allowlist);
        match p.network.egress() {
            Egress::Allowlist { cidrs, domains } => {
                assert_eq!(cidrs, vec!["140.82.112.0/20".parse().unwrap()]);
                assert_eq!(domains, vec!["api.github.com".to_owned()]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn schema_errors_are_precise() {
        // Unknown enum value, with a suggestion.
        let err = load_err(&base("p").replace("preset: claude", "preset: claud"));
        assert_eq!(err.kind(), ErrorKind::UnknownVariant);
        assert_eq!(err.details.field.as_deref(), Some("agent.preset"));
        assert_eq!(err.details.suggestion.as_deref(), Some("claude"));

        // Missing required section.
        let err = load_err(&base("p").replace("resources:\n  cores: 2\n  memory_mb: 2048\n", ""));
        assert_eq!(err.kind(), ErrorKind::MissingField);
        assert_eq!(err.details.field.as_deref(), Some("resources"));

        // Missing key inside a section points at the section.
        let err = load_err(&base("p").replace("  cores: 2\n", ""));
        assert_eq!(err.kind(), ErrorKind::MissingField);
        assert_eq!(err.details.field.as_deref(), Some("resources.cores"));
        assert_eq!(err.details.line, Some(3));

        // Wrong type.
        let err = load_err(&base("p").replace("cores: 2", "cores: many"));
        assert_eq!(err.kind(), ErrorKind::InvalidType);
        assert_eq!(err.details.field.as_deref(), Some("resources.cores"));
        assert_eq!(err.details.line, Some(4));
        assert!(
            !err.details.reason.contains("line"),
            "{}",
            err.details.reason
        );

        // Unknown top-level key without a close match lists the valid keys.
        let err = load_err(&format!("{}zzzzzz: 1\n", base("p")));
        assert_eq!(err.details.suggestion, None);
        assert!(err.details.expected.contains(&"template_vmid".to_owned()));
        assert!(
            err.to_string()
                .contains("expected one of: name, template_vmid"),
            "{err}"
        );

        // A key given twice is reported where it repeats.
        let err =
            load_err(&base("p").replace("  memory_mb: 2048\n", "  memory_mb: 2048\n  cores: 4\n"));
        assert_eq!(err.kind(), ErrorKind::Syntax);
        assert_eq!(err.details.field.as_deref(), Some("resources.cores"));
        assert_eq!(err.details.reason, "duplicate key");
        assert_eq!((err.details.line, err.details.column), (Some(6), Some(3)));

        // YAML syntax error with the file's line number.
        let err = load_err(&format!("{}---\nname: [unclosed\n", base("p")));
        assert_eq!(err.kind(), ErrorKind::Syntax);
        assert_eq!(err.details.document, Some(2));
        assert!(err.details.line.unwrap() >= 8, "{err}");
    }

    #[test]
    fn validate_yaml_returns_profiles_in_document_order() {
        let text = format!("{}---\n{}", base("zeta"), base("alpha"));
        let list = Profiles::validate_yaml(&text).unwrap();
        let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["zeta", "alpha"]);

        let err = Profiles::validate_yaml(&base("p").replace("cores: 2", "corez: 2")).unwrap_err();
        assert_eq!(err.details.file, "<request body>");
        assert_eq!(err.details.suggestion.as_deref(), Some("cores"));
    }

    #[test]
    fn defaults_apply_when_sections_are_absent() {
        let profiles = Profiles::from_yaml_str(&base("min"), "min.yaml").unwrap();
        let p = profiles.get("min").unwrap();
        assert_eq!(p.network.bridge, "vmbr1");
        assert_eq!(p.network.model, "virtio");
        assert_eq!(p.network.mode, NetworkMode::Nat);
        assert_eq!(p.storage.workspace, WorkspaceMode::None);
        assert!(!p.storage.full_clone);
        assert_eq!(p.behavior.mode, AgentMode::Yolo);
        assert_eq!(p.behavior.ttl_minutes_default, 60);
        assert_eq!(p.repo.clone_path, "/home/agent/repo");
        assert!(p.artifacts.upload);
        assert_eq!(p.artifacts.retention_days, 7);
        assert_eq!(p.artifacts.max_bytes, 256 * 1024 * 1024);

        // Round trip through from_profiles.
        let again = Profiles::from_profiles(vec![p.clone()]).unwrap();
        assert_eq!(again.get("min"), Some(p));
        let mut bad = p.clone();
        bad.resources.cores = 0;
        assert_eq!(
            Profiles::from_profiles(vec![bad])
                .unwrap_err()
                .details
                .field
                .as_deref(),
            Some("resources.cores")
        );
    }

    proptest::proptest! {
        /// Arbitrary YAML-ish text never panics the loader, and any position it reports
        /// lies inside the text.
        #[test]
        fn loader_never_panics_and_positions_are_in_range(
            lines in proptest::collection::vec(
                "(---|\\.\\.\\.|#[a-z ]{0,8}|[ ]{0,4}(- )?[a-z_]{1,10}:( [a-z0-9\\[\\]{}:\"'-]{0,12})?|[ ]{0,4}- [a-z0-9./]{0,10}|)",
                0..24,
            )
        ) {
            let text = lines.join("\n");
            let line_count = text.lines().count().max(1);
            if let Err(err) = Profiles::from_yaml_str(&text, "fuzz.yaml") {
                if let Some(line) = err.details.line {
                    proptest::prop_assert!(line >= 1 && line <= line_count + 1, "{err} in {text:?}");
                }
                proptest::prop_assert!(!err.to_string().is_empty());
            }
            let _ = Config::from_yaml_str(&text, "fuzz.yaml");
        }
    }
}
