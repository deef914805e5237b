//! Daemon configuration: documented defaults, strict parsing, validation, secret hygiene.

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::net::Ipv4Addr;
    use std::path::{Path, PathBuf};

    use agentlab_core::Vmid;
    use agentlab_core::config::{
        BackendKind, BootstrapDelivery, CONFIG_ENV, Config, ConfigError, DEFAULT_CONFIG_PATH,
        LogFormat, resolve_path,
    };
    use agentlab_core::profile::{
        ArtifactsProfile, BehaviorProfile, NetworkProfile, Profile, RepoProfile, StorageProfile,
    };
    use agentlab_core::yaml::ErrorKind;

    const SECRET: &str = "9f3c1a7e-5b2d-4c8e-a1f0-secret-token-value";

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_str(text, "config.yaml")
    }

    fn fake(extra: &str) -> String {
        format!("backend: fake\n{extra}")
    }

    fn pve(extra: &str) -> String {
        format!(
            "pve:\n  url: https://pve.example:8006\n  token_id: agentlab@pve!daemon\n  token_secret: {SECRET}\n{extra}"
        )
    }

    /// The first ```yaml block of `markdown` whose first line is `first_line`.
    fn yaml_block(markdown: &str, first_line: &str) -> String {
        let start = markdown
            .find(&format!("```yaml\n{first_line}\n"))
            .unwrap_or_else(|| panic!("no yaml block starting with {first_line:?}"));
        let body = &markdown[start + "```yaml\n".len()..];
        body[..body.find("```").unwrap()].to_owned()
    }

    #[test]
    fn example_config_is_the_defaults_plus_a_pve_section() {
        let path = repo_root().join("examples/config.yaml");
        let config = Config::load(&path).unwrap();
        let pve = config.pve.clone().unwrap();
        assert_eq!(
            Config {
                pve: None,
                ..config.clone()
            },
            Config::default()
        );
        assert_eq!(pve.node, "auto");
        assert_eq!(pve.pinned_node(), None);
        assert_eq!(pve.storage, "local-lvm");
        assert_eq!(pve.bootstrap, BootstrapDelivery::GuestAgent);
        assert_eq!(pve.max_concurrent_clones, 4);
        assert!(!pve.insecure);
        assert_eq!(pve.snippets_storage, None);
    }

    #[test]
    fn documented_defaults_match_the_code() {
        let doc = std::fs::read_to_string(repo_root().join("docs/configuration.md")).unwrap();

        let block = yaml_block(&doc, "# config defaults");
        let documented: Config = serde_yaml::from_str(&block).unwrap();
        assert_eq!(documented, Config::default());

        let block = yaml_block(&doc, "# profile defaults");
        let p: Profile = serde_yaml::from_str(&block).unwrap();
        assert_eq!(p.network, NetworkProfile::default());
        assert_eq!(p.storage, StorageProfile::default());
        assert_eq!(p.behavior, BehaviorProfile::default());
        assert_eq!(p.repo, RepoProfile::default());
        assert_eq!(p.artifacts, ArtifactsProfile::default());

        // Spot checks of the numbers the docs' prose quotes.
        let d = Config::default();
        assert_eq!(d.socket, Path::new("/run/agentlab/agentlabd.sock"));
        assert_eq!(d.db_path(), Path::new("/var/lib/agentlab/agentlab.db"));
        assert_eq!(d.artifact_dir(), Path::new("/var/lib/agentlab/artifacts"));
        assert_eq!(d.guest.controller_url(), "http://10.77.0.1:8844");
        assert_eq!(d.guest.max_body_bytes, 1 << 20);
        assert_eq!(d.guest.artifact_max_bytes, 512 << 20);
        assert_eq!(d.backend, BackendKind::Pve);
        assert_eq!(d.log.format, LogFormat::Auto);
        assert!(doc.contains(CONFIG_ENV) && doc.contains(DEFAULT_CONFIG_PATH));
    }

    #[test]
    fn minimal_configs() {
        // Defaults need a pve section.
        let err = parse("# nothing but a comment\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingField);
        assert_eq!(err.details.field.as_deref(), Some("pve"));

        let c = parse(&fake("")).unwrap();
        assert_eq!(c.backend, BackendKind::Fake);
        assert_eq!(c.pve, None);

        let c = parse(&pve("")).unwrap();
        assert_eq!(
            c.pve.unwrap().resolve_token_secret().unwrap().expose(),
            SECRET
        );

        let c = parse(&fake(
            "data_dir: /srv/al\nartifact_dir: /data/art\nguest:\n  listen: 127.0.0.1:0\n",
        ))
        .unwrap();
        assert_eq!(c.db_path(), Path::new("/srv/al/agentlab.db"));
        assert_eq!(c.artifact_dir(), Path::new("/data/art"));
        assert_eq!(c.guest.controller_url(), "http://127.0.0.1:0");

        let err = parse(&format!("{}---\nbackend: local\n", fake(""))).unwrap_err();
        assert_eq!(err.details.document, Some(2));
        assert!(err.to_string().contains("single YAML document"), "{err}");
    }

    #[test]
    fn typos_are_suggested_with_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            fake("guest:\n  token_ttl_secs: 60\n  listn: 127.0.0.1:9000\n"),
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownField);
        assert_eq!(err.details.field.as_deref(), Some("guest.listn"));
        assert_eq!(err.details.suggestion.as_deref(), Some("listen"));
        assert_eq!((err.details.line, err.details.column), (Some(4), Some(3)));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: field guest.listn (line 4, column 3): unknown field; did you mean listen?",
                path.display()
            )
        );

        let err = parse("backnd: fake\n").unwrap_err();
        assert_eq!(err.details.suggestion.as_deref(), Some("backend"));
        let err = parse("backend: proxmox\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownVariant);
        assert_eq!(err.details.expected, vec!["pve", "local", "qemu", "fake"]);

        let err = Config::load(&dir.path().join("absent.yaml")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
    }

    #[test]
    fn token_secret_never_appears_in_errors() {
        let with_secret = pve("");
        let cases = [
            // Typo elsewhere in the file.
            format!("{with_secret}  storage_typo: x\n"),
            // Both secret sources.
            format!("{with_secret}  token_secret_file: /etc/agentlab/token\n"),
            // Wrong type for the secret itself.
            with_secret.replace(
                &format!("token_secret: {SECRET}"),
                &format!("token_secret: [{SECRET}]"),
            ),
            with_secret.replace(
                &format!("token_secret: {SECRET}"),
                &format!("token_secret: {{k: {SECRET}}}"),
            ),
            // Invalid values next to it.
            with_secret.replace("https://pve.example:8006", "pve.example"),
            with_secret.replace("agentlab@pve!daemon", "agentlab"),
            format!("{with_secret}  max_concurrent_clones: {SECRET}\n"),
            format!("{with_secret}  insecure: true\n  fingerprint: {SECRET}\n"),
            format!("{with_secret}gateway: {SECRET}\n"),
            // A YAML syntax error on the secret's line.
            with_secret.replace(
                &format!("token_secret: {SECRET}"),
                &format!("token_secret: \"{SECRET}"),
            ),
            with_secret.replace(
                &format!("token_secret: {SECRET}"),
                &format!("token_secret: {SECRET}: x"),
            ),
            // The whole `pve:` section turned into one string (a stray `|`), found by the
            // fuzz test: serde would quote the string, secret included.
            with_secret.replace("pve:\n", "pve: |\n"),
        ];
        for (i, text) in cases.iter().enumerate() {
            let err = parse(text).expect_err(&format!("case {i} should fail"));
            let shown = [
                err.to_string(),
                format!("{err:?}"),
                serde_json::to_string(&err.details).unwrap(),
            ];
            for s in shown {
                assert!(!s.contains(SECRET), "case {i} leaked the secret: {s}");
            }
        }
        let ok = parse(&with_secret).unwrap();
        assert!(!format!("{ok:?}").contains(SECRET));
    }

    #[test]
    fn token_secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pve-token");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let text = format!(
            "pve:\n  url: https://pve.example:8006\n  token_id: a@pam!b\n  token_secret_file: {}\n",
            file.display()
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.pve
                .as_ref()
                .unwrap()
                .resolve_token_secret()
                .unwrap()
                .expose(),
            SECRET
        );

        std::fs::remove_file(&file).unwrap();
        let err = c.pve.unwrap().resolve_token_secret().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.to_string().contains("pve-token"), "{err}");
    }

    #[test]
    fn semantic_rules_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("socket: run/agentlab.sock", "socket"),
            ("db_path: state.db", "db_path"),
            ("network:\n  gateway: 10.78.0.1", "network.gateway"),
            ("network:\n  gateway: 10.77.0.0", "network.gateway"),
            ("network:\n  subnet: 10.77.0.5/16", "network.subnet"),
            ("network:\n  subnet: 10.77.0.0/24", "vmid_range"),
            ("network:\n  tailnet_ssh: true", "network.tailnet_ssh"),
            (
                "network:\n  bridge: this-name-is-too-long",
                "network.bridge",
            ),
            ("vmid_range:\n  start: 50\n  end: 60", "vmid_range.start"),
            ("vmid_range:\n  start: 9200\n  end: 9100", "vmid_range.end"),
            (
                "guest:\n  controller_url: 10.77.0.1:8844",
                "guest.controller_url",
            ),
            ("guest:\n  token_ttl_secs: 0", "guest.token_ttl_secs"),
            (
                "retention:\n  gc_interval_secs: 0",
                "retention.gc_interval_secs",
            ),
            ("log:\n  level: ''", "log.level"),
            ("fake:\n  boot_command: []", "fake.boot_command"),
            ("local:\n  rootfs: rootfs", "local.rootfs"),
            ("local:\n  uid_base: 1000", "local.uid_base"),
            ("local:\n  uid_slots: 0", "local.uid_slots"),
            ("local:\n  uid_slots: 40000", "local.uid_slots"),
            ("secrets:\n  identity: age.key", "secrets.identity"),
            ("ssh_public_keys: ['ssh-dss AAAA x']", "ssh_public_keys"),
            (
                "ssh_public_keys: ['from=\"*\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 x']",
                "ssh_public_keys",
            ),
        ];
        for (extra, field) in cases {
            let err = parse(&fake(extra)).expect_err(extra);
            assert_eq!(err.details.field.as_deref(), Some(*field), "{extra}: {err}");
            // Fields absent from the text (defaults) have no position.
            if extra.contains(field.split('.').next().unwrap()) {
                assert!(err.details.line.is_some(), "{extra}: no line in {err}");
            }
        }

        let pve_cases: &[(&str, &str, &str)] = &[
            ("https://pve.example:8006", "ftp://x", "pve.url"),
            ("agentlab@pve!daemon", "agentlab@pve", "pve.token_id"),
            (&format!("  token_secret: {SECRET}\n"), "", "pve"),
            (
                "  token_id",
                "  bootstrap: snippet\n  token_id",
                "pve.snippets_storage",
            ),
            (
                "  token_id",
                "  insecure: true\n  ca_file: /etc/ca.pem\n  token_id",
                "pve.insecure",
            ),
            (
                "  token_id",
                "  fingerprint: AB:CD\n  token_id",
                "pve.fingerprint",
            ),
            (
                "  token_id",
                "  max_concurrent_clones: 0\n  token_id",
                "pve.max_concurrent_clones",
            ),
        ];
        for (from, to, field) in pve_cases {
            let text = pve("").replacen(from, to, 1);
            let err = parse(&text).expect_err(to);
            assert_eq!(err.details.field.as_deref(), Some(*field), "{to}: {err}");
        }
    }

    #[test]
    fn config_path_resolution() {
        let flag = Path::new("/tmp/flag.yaml");
        let env = OsStr::new("/tmp/env.yaml");
        assert_eq!(resolve_path(Some(flag), Some(env)), flag);
        assert_eq!(resolve_path(None, Some(env)), Path::new("/tmp/env.yaml"));
        assert_eq!(
            resolve_path(None, Some(OsStr::new(""))),
            Path::new(DEFAULT_CONFIG_PATH)
        );
        assert_eq!(
            resolve_path(None, None),
            Path::new("/etc/agentlab/config.yaml")
        );
        assert_eq!(CONFIG_ENV, "AGENTLAB_CONFIG");
    }

    #[test]
    fn sandbox_addresses_derive_from_the_vmid() {
        let c = parse(&fake("")).unwrap();
        let ip = |v: u32| c.sandbox_ipv4(Vmid::new(v).unwrap());
        assert_eq!(ip(9100), Some(Ipv4Addr::new(10, 77, 0, 2)));
        assert_eq!(ip(9101), Some(Ipv4Addr::new(10, 77, 0, 3)));
        assert_eq!(ip(9999), Some(Ipv4Addr::new(10, 77, 3, 133)));
        assert_eq!(ip(9099), None);
        assert_eq!(ip(10_000), None);

        // A tight subnet: a /24 holds 253 sandboxes (.2 to .254), and the gateway must not sit
        // among them.
        let tight = |end: u32, gateway: &str| {
            parse(&fake(&format!(
                "vmid_range:\n  start: 100\n  end: {end}\nnetwork:\n  subnet: 192.168.50.0/24\n  gateway: {gateway}\n"
            )))
        };
        let c = tight(352, "192.168.50.1").unwrap();
        let all: Vec<Ipv4Addr> = (100..=352)
            .map(|v| c.sandbox_ipv4(Vmid::new(v).unwrap()).unwrap())
            .collect();
        assert_eq!(all[0], Ipv4Addr::new(192, 168, 50, 2));
        assert_eq!(*all.last().unwrap(), Ipv4Addr::new(192, 168, 50, 254));
        let err = tight(353, "192.168.50.1").unwrap_err();
        assert_eq!(err.details.field.as_deref(), Some("vmid_range"));
        let err = tight(352, "192.168.50.254").unwrap_err();
        assert_eq!(err.details.field.as_deref(), Some("network.gateway"));
        assert_eq!(err.details.line, Some(7));
        // A gateway above the sandbox block is fine.
        tight(200, "192.168.50.254").unwrap();

        // A config built in code is validated the same way.
        let mut built = Config {
            backend: BackendKind::Fake,
            ..Config::default()
        };
        built.validate().unwrap();
        built.vmid_range.end = 100_000;
        assert_eq!(
            built.validate().unwrap_err().details.field.as_deref(),
            Some("vmid_range")
        );
    }

    #[test]
    fn limits_section_defaults_and_rules() {
        let d = Config::default().limits;
        assert_eq!(d.max_body_bytes, 64 << 10);
        assert_eq!(d.max_profile_body_bytes, 1 << 20);
        assert_eq!((d.max_yaml_depth, d.max_ttl_minutes), (64, 10080));
        assert!(!d.allow_file_repos);
        let c = parse(&fake(
            "limits:\n  allow_file_repos: true\n  max_ttl_minutes: 60\n  repo_schemes: [https]\n",
        ))
        .unwrap();
        assert!(c.limits.allow_file_repos);
        assert_eq!(c.limits.repo_schemes, ["https"]);
        for (text, field) in [
            ("limits:\n  max_ttl_minutes: 0", "limits.max_ttl_minutes"),
            ("limits:\n  max_yaml_depth: 500", "limits.max_yaml_depth"),
            ("limits:\n  repo_schemes: [file]", "limits.repo_schemes"),
            ("limits:\n  max_body_bytes: 0", "limits.max_body_bytes"),
        ] {
            let e = parse(&fake(text)).unwrap_err();
            assert_eq!(e.details.field.as_deref(), Some(field), "{text}");
        }
    }
}
