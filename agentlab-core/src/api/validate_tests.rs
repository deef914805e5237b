use super::*;

fn limits() -> LimitsConfig {
    LimitsConfig::default()
}

#[test]
fn repo_urls_with_allowed_schemes_pass() {
    for ok in [
        "https://github.com/o/r.git",
        "http://10.77.0.1:8080/r",
        "ssh://git@host:22/o/r",
        "git://10.99.0.2/repo",
        "git@github.com:o/r.git",
        "host:path/r",
        "HTTPS://example.com/r",
    ] {
        repo_url(ok, &limits()).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn dangerous_repo_urls_are_refused() {
    for (bad, why) in [
        ("", "empty"),
        ("file:///etc", "allow_file_repos"),
        ("/srv/repo", "local paths"),
        ("./repo", "local paths"),
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("ext::sh", "remote helper"),
        ("fd::17", "remote helper"),
        ("--upload-pack=touch /tmp/x", "whitespace"),
        ("--upload-pack=evil", "'-'"),
        ("https://h/r\nx", "control"),
        ("https://h/r\u{1b}[2J", "control"),
        ("https://h/r\u{85}", "control"),
        ("ftp://h/r", "not allowed"),
        ("https:///path", "host"),
        ("ssh://-oProxyCommand=x/r", "host"),
        ("-oProxyCommand=x:r", "'-'"),
        ("@:r", "host"),
    ] {
        let e = repo_url(bad, &limits()).expect_err(bad);
        assert_eq!(e.code(), "invalid_repo_url");
        assert!(e.to_string().contains(why), "{bad:?}: {e}");
    }
    let long = format!("https://h/{}", "a".repeat(MAX_REPO_URL_LEN));
    assert!(repo_url(&long, &limits()).is_err());
}

#[test]
fn file_repos_and_schemes_follow_the_config() {
    let mut l = limits();
    l.allow_file_repos = true;
    repo_url("file:///srv/repo", &l).unwrap();
    repo_url("/srv/repo", &l).unwrap();
    l.repo_schemes = vec!["https".into()];
    assert!(repo_url("git://h/r", &l).is_err());
    let e = repo_url("git@h:r", &l).unwrap_err();
    assert!(e.to_string().contains("scp-like"), "{e}");
    repo_url("https://h/r", &l).unwrap();
}

#[test]
fn git_refs_follow_check_ref_format() {
    for ok in [
        "main",
        "feature/x-1",
        "v1.2.3",
        "refs/heads/main",
        "0123456789abcdef0123456789abcdef01234567",
        "HEAD",
    ] {
        git_ref(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "-b",
        "--upload-pack=x",
        "a..b",
        "a b",
        "a\nb",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "a@{1}",
        "@",
        "a/",
        "a.",
        "/a",
        "a//b",
        ".hidden",
        "x/.y",
        "x.lock",
        "x/y.lock/z",
        "a\u{7f}",
        "",
    ] {
        let e = git_ref(bad).expect_err(bad);
        assert_eq!(e.code(), "invalid_git_ref", "{bad:?}");
    }
    assert!(git_ref(&"a".repeat(256)).is_err());
    git_ref(&"a".repeat(255)).unwrap();
}

#[test]
fn sandbox_names_are_host_name_like() {
    for ok in ["agentlab-101", "a", "web.1", "A9"] {
        sandbox_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "../../etc/x",
        "a/b",
        "",
        "-a",
        ".a",
        "a..b",
        "a b",
        "a\u{1b}",
        "ä",
        "a_b",
    ] {
        let e = sandbox_name(bad).expect_err(bad);
        assert_eq!(e.code(), "invalid_name");
    }
    assert!(sandbox_name(&"a".repeat(64)).is_err());
    sandbox_name(&"a".repeat(63)).unwrap();
}

#[test]
fn ttl_and_workspace_size_are_bounded() {
    let l = limits();
    let e = ttl_minutes(Some(u32::MAX), &l).unwrap_err();
    assert_eq!(e.code(), "out_of_range");
    assert_eq!(
        e.details(),
        serde_json::json!({"field": "ttl_minutes", "value": 4_294_967_295u64, "min": 1, "max": 10080})
    );
    assert!(ttl_minutes(Some(0), &l).is_err());
    ttl_minutes(Some(10080), &l).unwrap();
    ttl_minutes(None, &l).unwrap();
    let ws = |size_gb| CreateWorkspaceRequest {
        name: "w".into(),
        size_gb,
    };
    assert!(ws(4_000_000_000).validate(&l).is_err());
    assert!(ws(0).validate(&l).is_err());
    ws(1024).validate(&l).unwrap();
}

#[test]
fn request_bodies_check_every_field() {
    let l = limits();
    let job = RunJobRequest {
        repo: "https://h/r".into(),
        git_ref: Some("main".into()),
        task: "t".into(),
        profile: "p".into(),
        ..RunJobRequest::default()
    };
    job.validate(&l).unwrap();
    let bad_ref = RunJobRequest {
        git_ref: Some("-x".into()),
        ..job.clone()
    };
    assert_eq!(bad_ref.validate(&l).unwrap_err().code(), "invalid_git_ref");
    let empty_ref = RunJobRequest {
        git_ref: Some(String::new()),
        ..job.clone()
    };
    empty_ref.validate(&l).unwrap();
    let bad_ttl = RunJobRequest {
        ttl_minutes: Some(u32::MAX),
        ..job
    };
    assert_eq!(bad_ttl.validate(&l).unwrap_err().code(), "out_of_range");
    let sb = CreateSandboxRequest {
        profile: "p".into(),
        name: Some("../../etc/x".into()),
        ..CreateSandboxRequest::default()
    };
    assert_eq!(sb.validate(&l).unwrap_err().code(), "invalid_name");
    let rebind = RebindWorkspaceRequest {
        profile: "p".into(),
        ttl_minutes: Some(0),
        ..RebindWorkspaceRequest::default()
    };
    assert!(rebind.validate(&l).is_err());
}
