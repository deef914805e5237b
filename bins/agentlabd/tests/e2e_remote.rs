//! End to end: the remote API over real TLS on loopback, driven by the real CLI with
//! `--endpoint` and a token the daemon issued over its socket: a job runs to COMPLETED with
//! the runner; the certificate is pinned on first use and a wrong pin is refused; a missing
//! scope, a revoked and an expired token are refused with their reasons; a flood gets 429.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use harness::{Daemon, bin};

const PROFILE: &str = "name: e2e\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
     behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
     repo:\n  clone_path: {dir}/checkout\nagent:\n  command: \"echo remote-agent-output\"\n";

/// `agentlab` against the remote endpoint, with its own config home (known endpoints).
fn remote(url: &str, token: &str, home: &Path, args: &[&str]) -> Output {
    Command::new(bin("agentlab"))
        .env("AGENTLAB_ENDPOINT", url)
        .env("AGENTLAB_TOKEN", token)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("AGENTLAB_SOCKET")
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn create_token(d: &Daemon, args: &[&str]) -> String {
    let mut full = vec!["token", "create"];
    full.extend_from_slice(args);
    let v = d.json(&full);
    let t = v["token"].as_str().unwrap().to_owned();
    assert!(t.starts_with("alab_"), "{v}");
    t
}

#[test]
fn a_ci_machine_runs_a_job_over_the_remote_api_and_is_held_to_its_token() {
    let port = harness::free_port();
    let section = format!(
        "fake:\n  work_dir: {{dir}}/vms\n  runner_path: {}\nremote:\n  listen: 127.0.0.1:{port}\n  rate_per_sec: 1\n  burst: 40\n",
        bin("agent-runner").display()
    );
    let d = Daemon::start_backend(Some(PROFILE), "fake", &section);
    let url = format!("https://127.0.0.1:{port}");
    let repo = harness::empty_repo(&d);
    let home = tempfile::tempdir().unwrap();

    let ci = create_token(
        &d,
        &[
            "--name",
            "ci",
            "--scope",
            "job:*",
            "--scope",
            "sandbox:read",
            "--ttl",
            "1h",
        ],
    );
    assert!(
        !d.log().contains(&ci[18..]),
        "the daemon never logs a token"
    );

    // A job, end to end, over TLS: the certificate is pinned on first use.
    let out = remote(
        &url,
        &ci,
        home.path(),
        &[
            "job",
            "run",
            "--repo",
            &repo,
            "--task",
            "t",
            "--profile",
            "e2e",
        ],
    );
    assert!(out.status.success(), "{}\nlog:\n{}", text(&out), d.log());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pinned its certificate"),
        "{}",
        text(&out)
    );
    let known = std::fs::read_to_string(home.path().join("agentlab/known_endpoints")).unwrap();
    let pinned = known.split_whitespace().nth(1).unwrap().to_owned();
    assert!(
        d.log().contains(&pinned),
        "the daemon logged the fingerprint clients pin"
    );
    let out = remote(&url, &ci, home.path(), &["--json", "job", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs[0]["state"], "COMPLETED", "{jobs}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("pinned"),
        "the pin is told once"
    );

    // An explicit fingerprint works; a different one is refused as a changed certificate.
    let other_home = tempfile::tempdir().unwrap();
    let ok = remote(
        &url,
        &ci,
        other_home.path(),
        &["--fingerprint", &pinned, "job", "list"],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    let wrong = format!("00{}", &pinned[2..]);
    let bad = remote(
        &url,
        &ci,
        other_home.path(),
        &["--fingerprint", &wrong, "job", "list"],
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("changed"), "{}", text(&bad));
    std::fs::write(
        home.path().join("agentlab/known_endpoints"),
        format!("127.0.0.1:{port} {wrong}\n"),
    )
    .unwrap();
    let bad = remote(&url, &ci, home.path(), &["job", "list"]);
    assert!(
        text(&bad).contains("changed") && text(&bad).contains("known_endpoints"),
        "{}",
        text(&bad)
    );
    std::fs::write(
        home.path().join("agentlab/known_endpoints"),
        format!("127.0.0.1:{port} {pinned}\n"),
    )
    .unwrap();

    // A scope the token lacks, and token management, are refused with the reason.
    let out = remote(
        &url,
        &ci,
        home.path(),
        &["--json", "sandbox", "new", "--profile", "e2e"],
    );
    assert!(!out.status.success());
    let err: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stderr).trim()).unwrap();
    assert_eq!(err["error"]["code"], "scope_missing", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sandbox:create")
    );
    let out = remote(&url, &ci, home.path(), &["token", "list"]);
    assert!(text(&out).contains("socket"), "{}", text(&out));

    // Revoked: refused at once. Expired: refused after its ttl.
    let short = create_token(&d, &["--name", "short", "--scope", "*", "--ttl", "2s"]);
    d.json(&["token", "revoke", "ci"]);
    let out = remote(&url, &ci, home.path(), &["job", "list"]);
    assert!(text(&out).contains("revoked"), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(3));
    let out = remote(&url, &short, home.path(), &["job", "list"]);
    assert!(text(&out).contains("expired"), "{}", text(&out));
    let out = remote(
        &url,
        "alab_0123456789ab_forged",
        home.path(),
        &["job", "list"],
    );
    assert!(text(&out).contains("not valid"), "{}", text(&out));
    let listed = d.json(&["token", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(!listed.to_string().contains(&ci[18..]));

    // MCP over streamable HTTP at /mcp with the official Python SDK: the tools act with the
    // caller's token, so a job runs but a sandbox (no sandbox:create) is refused.
    if harness::python_mcp_available() {
        let agent = create_token(
            &d,
            &[
                "--name",
                "agent",
                "--scope",
                "mcp:use",
                "--scope",
                "job:*",
                "--scope",
                "profile:read",
                "--ttl",
                "1h",
            ],
        );
        let script = d.dir.path().join("mcp_http_client.py");
        std::fs::write(&script, include_str!("e2e/mcp_http_client.py")).unwrap();
        let cert = d.dir.path().join("data/remote/cert.pem");
        let out = Command::new("python3")
            .arg(&script)
            .arg(format!("{url}/mcp"))
            .arg(&cert)
            .arg(&agent)
            .arg(&repo)
            .arg("e2e")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}
log:
{}",
            text(&out),
            d.log()
        );
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        assert_eq!(v["server"]["name"], "agentlab", "{v}");
        assert!(v["tools"].as_array().unwrap().len() >= 10, "{v}");
        assert_eq!(v["list_profiles"]["is_error"], false, "{v}");
        assert_eq!(v["run_job"]["is_error"], false, "{v}");
        assert_eq!(v["run_job"]["json"]["job"]["state"], "COMPLETED", "{v}");
        assert_eq!(v["create_sandbox"]["is_error"], true, "{v}");
        assert!(
            v["create_sandbox"]["text"]
                .as_str()
                .unwrap()
                .starts_with("scope_missing"),
            "{v}"
        );
        // Without mcp:use the endpoint itself is refused.
        let out = Command::new("python3")
            .arg(&script)
            .arg(format!("{url}/mcp"))
            .arg(&cert)
            .arg(&ci)
            .arg(&repo)
            .arg("e2e")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{}", text(&out));
    }

    // Prometheus metrics on the remote API need metrics:read.
    let admin = create_token(&d, &["--name", "admin", "--scope", "*", "--ttl", "1h"]);
    let cert = d.dir.path().join("data/remote/cert.pem");
    let fetch = |token: &str| {
        let py = "import ssl,sys,urllib.request as u\n\
ctx=ssl.create_default_context(cafile=sys.argv[2])\n\
r=u.Request(sys.argv[1],headers={'Authorization':'Bearer '+sys.argv[3]})\n\
try:\n  print(u.urlopen(r,context=ctx).read().decode())\n\
except u.HTTPError as e:\n  print(e.code)\n";
        Command::new("python3")
            .args(["-c", py])
            .arg(format!("{url}/metrics"))
            .arg(&cert)
            .arg(token)
            .output()
            .unwrap()
    };
    let out = fetch(&admin);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("agentlab_jobs_finished"),
        "{}",
        text(&out)
    );
    let out = fetch(&short);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "401",
        "{}",
        text(&out)
    );

    // A flood from one address: 429 with the limit named, within the burst of 40.
    let mut limited = None;
    for _ in 0..60 {
        let out = remote(&url, &admin, home.path(), &["--json", "status"]);
        if !out.status.success() {
            limited = Some(out);
            break;
        }
    }
    let out = limited.expect("a flood is limited");
    let err: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stderr).trim()).unwrap();
    assert_eq!(err["error"]["code"], "rate_limited", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("remote.rate_per_sec")
    );
}
