//! Tests of the `result:` section: parsing, validation, templating, resolution.

use super::*;

const BASE: &str = "name: p\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\nagent:\n  command: make\n";

fn load(extra: &str) -> Result<Profile, ProfileError> {
    let text = format!("{BASE}{extra}");
    Profiles::from_yaml_str(&text, "t.yaml").map(|p| p.get("p").unwrap().clone())
}

fn ctx<'a>(repo: &'a str, git_ref: Option<&'a str>) -> ResultContext<'a> {
    ResultContext {
        job: "job-00aa",
        profile: "p",
        repo,
        git_ref,
    }
}

#[test]
fn defaults_push_nothing_and_keys_are_strict() {
    let p = load("").unwrap();
    assert_eq!(p.result, ResultProfile::default());
    assert!(!p.result.push && p.result.commit_leftovers);
    assert_eq!(p.result.branch, "agentlab/{job}");
    assert_eq!(
        resolve_result(&p.result, None, ctx("https://h/o/r.git", None)).unwrap(),
        None
    );
    let e = load("result:\n  push: true\n  brnch: x/{job}\n").unwrap_err();
    assert!(e.to_string().contains("brnch"), "{e}");
    let e = load("result:\n  pr:\n    forge: gitlab\n").unwrap_err();
    assert!(e.to_string().contains("gitlab"), "{e}");
}

#[test]
fn profile_validation_names_the_field() {
    for (yaml, field) in [
        (
            "result:\n  push: true\n  branch: fixed-branch\n",
            "result.branch",
        ),
        (
            "result:\n  push: true\n  branch: a/{sandbox}/{job}\n",
            "result.branch",
        ),
        (
            "result:\n  push: true\n  branch: bad..{job}\n",
            "result.branch",
        ),
        (
            "result:\n  push: true\n  branch: \"x {job}\"\n",
            "result.branch",
        ),
        ("result:\n  open_pr: true\n", "result.open_pr"),
        (
            "result:\n  push: true\n  open_pr: true\n  pr:\n    forge: gitea\n",
            "result.pr.api_url",
        ),
        (
            "result:\n  push: true\n  pr:\n    api_url: ftp://x\n",
            "result.pr.api_url",
        ),
        (
            "result:\n  push: true\n  pr:\n    base: \"a:b\"\n",
            "result.pr.base",
        ),
    ] {
        let e = load(yaml).unwrap_err();
        assert_eq!(e.details.field.as_deref(), Some(field), "{yaml}: {e}");
    }
    let ok = load(
        "result:\n  push: true\n  branch: bots/{profile}/{job}\n  open_pr: true\n  pr:\n    forge: forgejo\n    api_url: http://127.0.0.1:3000\n    title: \"Job {job}\"\n",
    )
    .unwrap();
    assert_eq!(ok.result.pr.forge, Forge::Forgejo);
}

#[test]
fn templates_render_known_placeholders_only() {
    assert_eq!(
        render_template("a/{profile}/{job}", "job-1", "yolo").unwrap(),
        "a/yolo/job-1"
    );
    assert!(render_template("a/{jobs}", "j", "p").is_err());
    assert!(render_template("a/{job", "j", "p").is_err());
    assert!(render_template("a/job}", "j", "p").is_err());
}

#[test]
fn branch_names_follow_git_rules() {
    for ok in ["agentlab/job-1", "a.b/c_d", "feature/x-1"] {
        check_branch_name(ok).unwrap();
    }
    for bad in [
        "",
        "-x",
        "/x",
        "x/",
        "x.",
        "a..b",
        "a b",
        "a~b",
        "a^b",
        "a:b",
        "a?b",
        "a*b",
        "a[b",
        "a\\b",
        "a@{b",
        "@",
        "a//b",
        "a/.b",
        "a/b.lock",
        "refs/heads/x",
        "a\tb",
    ] {
        assert!(check_branch_name(bad).is_err(), "{bad:?}");
    }
    assert!(check_branch_name(&"a".repeat(201)).is_err());
}

#[test]
fn repo_urls_give_forge_coordinates() {
    let c = |u: &str| repo_coordinates(u).map(|(h, o, r)| format!("{h} {o} {r}"));
    assert_eq!(
        c("https://github.com/you/app.git").as_deref(),
        Some("github.com you app")
    );
    assert_eq!(
        c("https://user@GitHub.com:443/you/app/").as_deref(),
        Some("github.com you app")
    );
    assert_eq!(
        c("git@github.com:you/app.git").as_deref(),
        Some("github.com you app")
    );
    assert_eq!(
        c("ssh://git@gitea.lan:2222/org/svc").as_deref(),
        Some("gitea.lan org svc")
    );
    assert_eq!(
        c("http://127.0.0.1:3000/git/org/svc.git").as_deref(),
        Some("127.0.0.1 org svc")
    );
    for bad in ["https://github.com/app", "file:///srv/repo", "nonsense"] {
        assert_eq!(c(bad), None, "{bad}");
    }
}

#[test]
fn resolve_merges_the_override_and_refuses_base_branches() {
    let profile = ResultProfile::default();
    let over = ResultOverride {
        push: Some(true),
        ..ResultOverride::default()
    };
    let spec = resolve_result(&profile, Some(&over), ctx("git://h/repo", Some("main")))
        .unwrap()
        .unwrap();
    assert_eq!(spec.branch, "agentlab/job-00aa");
    assert!(spec.commit_leftovers);
    assert_eq!(spec.pull_request, None);

    let to_ref = ResultOverride {
        branch: Some("{job}".into()),
        ..over.clone()
    };
    let e = resolve_result(&profile, Some(&to_ref), ctx("git://h/r", Some("job-00aa")));
    assert!(e.unwrap_err().contains("base branch"));
    let fixed = ResultOverride {
        branch: Some("main".into()),
        ..over.clone()
    };
    assert!(resolve_result(&profile, Some(&fixed), ctx("git://h/r", None)).is_err());
    let pr_only = ResultOverride {
        open_pr: Some(true),
        ..ResultOverride::default()
    };
    assert!(resolve_result(&profile, Some(&pr_only), ctx("git://h/r", None)).is_err());
    let no_push = ResultOverride {
        push: Some(false),
        ..ResultOverride::default()
    };
    let pushing = ResultProfile {
        push: true,
        open_pr: true,
        ..ResultProfile::default()
    };
    assert_eq!(
        resolve_result(&pushing, Some(&no_push), ctx("git://h/r", None)).unwrap(),
        None
    );
}

#[test]
fn resolve_builds_the_pull_request() {
    let github = ResultProfile {
        push: true,
        open_pr: true,
        ..ResultProfile::default()
    };
    let spec = resolve_result(
        &github,
        None,
        ctx("https://github.com/you/app.git", Some("dev")),
    )
    .unwrap()
    .unwrap();
    let pr = spec.pull_request.unwrap();
    assert_eq!(pr.api_url, "https://api.github.com");
    assert_eq!((pr.owner.as_str(), pr.repo.as_str()), ("you", "app"));
    assert_eq!(pr.title, "AgentLab job job-00aa");
    assert_eq!(pr.base.as_deref(), Some("dev"));
    assert_eq!(pr.forge, "github");
    // GitHub Enterprise or any other host needs the API URL.
    let e = resolve_result(&github, None, ctx("https://git.corp/you/app.git", None));
    assert!(e.unwrap_err().contains("api_url"));
    let gitea = ResultProfile {
        pr: PrProfile {
            forge: Forge::Gitea,
            api_url: Some("http://127.0.0.1:3000/".into()),
            title: Some("{profile}: {job}".into()),
            base: None,
        },
        ..github
    };
    let over = ResultOverride {
        pr_base: Some("release".into()),
        ..ResultOverride::default()
    };
    let pr = resolve_result(
        &gitea,
        Some(&over),
        ctx("http://127.0.0.1:3000/o/r.git", None),
    )
    .unwrap()
    .unwrap()
    .pull_request
    .unwrap();
    assert_eq!(pr.api_url, "http://127.0.0.1:3000");
    assert_eq!(pr.title, "p: job-00aa");
    assert_eq!(pr.base.as_deref(), Some("release"));
    let e = resolve_result(&gitea, None, ctx("file:///srv/r", None));
    assert!(e.unwrap_err().contains("owner"));
}
