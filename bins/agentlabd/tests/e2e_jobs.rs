//! End to end: jobs through the real daemon and CLI, the fake backend's boot hook running the
//! real `agent-runner` against a local git repository, with age-encrypted secrets; plus the
//! leak scan over everything the run left on disk.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use harness::{Daemon, bin};

/// A distinctive secret with characters that change under every encoding.
const SECRET: &str = "agentlab-LEAK-9f3Kq!7z#x/+~";

fn profiles(agent: &str, timeout_minutes: u32) -> String {
    format!(
        "name: e2e\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
         behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: {timeout_minutes}\n\
         repo:\n  clone_path: {{dir}}/checkout\nsecrets_bundle: default\nagent:\n  command: {agent:?}\n"
    )
}

fn start(agent: &str, timeout_minutes: u32) -> Daemon {
    let extra = format!("  runner_path: {}\n", bin("agent-runner").display());
    let d = Daemon::start_with(Some(&profiles(agent, timeout_minutes)), &extra);
    let dir = d.dir.path();
    let secrets = |args: &[&str], stdin: Option<&str>| {
        let mut c = Command::new(bin("agentlab"))
            .arg("secrets")
            .arg("--dir")
            .arg(dir.join("secrets"))
            .arg("--identity")
            .arg(dir.join("age.key"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = stdin {
            c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        } else {
            drop(c.stdin.take());
        }
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "secrets {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    secrets(&["init"], None);
    secrets(&["set-env", "E2E_SECRET"], Some(SECRET));
    let repo = dir.join("repo");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    };
    std::fs::create_dir_all(&repo).unwrap();
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "demo\n").unwrap();
    git(&["add", "README.md"]);
    git(&["commit", "-q", "-m", "init"]);
    d
}

fn repo_url(d: &Daemon) -> String {
    format!("file://{}", d.dir.path().join("repo").display())
}

/// Runs `job run` (waiting) and returns (exit code, stdout, stderr, job JSON).
fn run_job(d: &Daemon, repo: &str) -> (Option<i32>, String, String, serde_json::Value) {
    let out = d.cli(&[
        "job",
        "run",
        "--repo",
        repo,
        "--task",
        "edit the readme",
        "--profile",
        "e2e",
    ]);
    let jobs = d.json(&["job", "list"]);
    let job = jobs.as_array().unwrap()[0].clone();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
        job,
    )
}

const EDIT_AND_COMMIT: &str = "echo agent-output-marker; echo hello >> README.md; git add README.md; \
    git -c user.name=a -c user.email=a@example.invalid commit -q -m hello; \
    echo leak-raw $E2E_SECRET; printf %s \"$E2E_SECRET\" | base64; \
    printf %s \"$E2E_SECRET\" | base64 | tr '+/' '-_' | tr -d '='; \
    python3 -c 'import os,urllib.parse; print(urllib.parse.quote(os.environ[\"E2E_SECRET\"], safe=\"\"))'; \
    echo \"$E2E_SECRET\" > \"$AGENTLAB_ARTIFACTS_DIR/leak.txt\"; echo done > \"$AGENTLAB_ARTIFACTS_DIR/notes.txt\"";

#[test]
fn job_completes_with_artifacts_and_nothing_leaks() {
    let d = start(EDIT_AND_COMMIT, 5);
    let (code, stdout, stderr, job) = run_job(&d, &repo_url(&d));
    assert_eq!(
        code,
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nlog:\n{}",
        d.log()
    );
    assert_eq!(job["state"], "COMPLETED");
    assert!(
        job["outcome"]["commit"]
            .as_str()
            .is_some_and(|c| c.len() == 40),
        "{job}"
    );
    assert!(
        stdout.contains("agent-output-marker"),
        "live agent output missing: {stdout}"
    );
    assert!(
        stdout.contains("leak-raw [REDACTED]"),
        "the agent's secret output must arrive redacted: {stdout}"
    );
    let id = job["id"].as_str().unwrap();
    let vmid = job["sandbox"].as_u64().unwrap();
    d.wait_sandbox(vmid, |v| v["state"] == "DESTROYED");

    // logs --follow of a finished job prints everything and ends.
    let follow = d.cli(&["logs", id, "--follow"]);
    assert!(follow.status.success());
    assert!(String::from_utf8_lossy(&follow.stdout).contains("agent-output-marker"));

    // Artifacts download with a verified sha256.
    let arts = d.json(&["job", "artifacts", id]);
    let art = &arts.as_array().unwrap()[0];
    let out_dir = d.dir.path().join("downloaded");
    std::fs::create_dir_all(&out_dir).unwrap();
    let dl = d.cli(&[
        "job",
        "artifacts",
        "download",
        id,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        dl.status.success(),
        "{}",
        String::from_utf8_lossy(&dl.stderr)
    );
    let name = art["name"].as_str().unwrap();
    let bytes = std::fs::read(out_dir.join(name)).unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        art["sha256"].as_str().unwrap()
    );
    let unpacked = d.dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let ok = Command::new("tar")
        .arg("xzf")
        .arg(out_dir.join(name))
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(ok.success());
    let runner_log = std::fs::read_to_string(unpacked.join("runner.log")).unwrap();
    assert!(runner_log.contains("agent-output-marker"), "{runner_log}");
    assert!(unpacked.join("report.json").exists());
    assert!(unpacked.join("artifacts/notes.txt").exists());

    leak_scan(d.dir.path());
}

/// Every file under `root` (except the bundle store, the identity and the git checkouts) must
/// contain none of the secret's forms.
fn leak_scan(root: &Path) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let b64_nopad = base64::engine::general_purpose::STANDARD_NO_PAD.encode(SECRET);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
    let pct: String = SECRET
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let forms = [SECRET.to_owned(), b64, b64_nopad, b64url, pct];
    let mut scanned = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if p != root && ["secrets", "age.key", "checkout", "repo"].contains(&name.as_str()) {
            continue;
        }
        let kind = std::fs::symlink_metadata(&p).unwrap().file_type();
        if kind.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let mut data = Vec::new();
        std::fs::File::open(&p)
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        let text = String::from_utf8_lossy(&data);
        for f in &forms {
            assert!(
                !text.contains(f.as_str()),
                "secret form {f:?} found in {}",
                p.display()
            );
        }
        scanned += 1;
    }
    assert!(scanned >= 5, "leak scan saw only {scanned} files");
}

#[test]
fn failing_agent_fails_with_its_exit_code_and_still_uploads() {
    let d = start("echo about-to-fail; exit 7", 5);
    let (code, _, stderr, job) = run_job(&d, &repo_url(&d));
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(job["state"], "FAILED");
    assert_eq!(job["outcome"]["exit_code"], 7);
    let arts = d.json(&["job", "artifacts", job["id"].as_str().unwrap()]);
    assert_eq!(
        arts.as_array().unwrap().len(),
        1,
        "artifacts must still arrive"
    );
}

#[test]
fn bad_repo_url_fails_naming_the_clone_step() {
    let d = start("true", 5);
    let missing = format!("file://{}", d.dir.path().join("no-such-repo").display());
    let (code, _, stderr, job) = run_job(&d, &missing);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(job["state"], "FAILED");
    assert_eq!(job["outcome"]["failed_step"], "clone", "{job}");
    let arts = d.json(&["job", "artifacts", job["id"].as_str().unwrap()]);
    assert_eq!(
        arts.as_array().unwrap().len(),
        1,
        "artifacts must still arrive"
    );
}

#[test]
fn agent_past_its_timeout_ends_in_timeout() {
    // A one-minute job timeout: the runner gets what is left minus a safety margin.
    let d = start("echo sleeping; sleep 600", 1);
    let (code, _, stderr, job) = run_job(&d, &repo_url(&d));
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(job["state"], "TIMEOUT");
    assert_eq!(job["outcome"]["exit_code"], 124, "{job}");
    let arts = d.json(&["job", "artifacts", job["id"].as_str().unwrap()]);
    assert_eq!(
        arts.as_array().unwrap().len(),
        1,
        "artifacts must still arrive"
    );
}
