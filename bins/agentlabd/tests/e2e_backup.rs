//! End to end: `agentlab admin backup` from a daemon with sandboxes and jobs, `admin restore`
//! into a fresh data dir, and a fresh daemon listing the same records; tampered archives and
//! newer schemas refused.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use harness::{Daemon, bin, cli_at, empty_repo, json_at};

fn ids(v: &serde_json::Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].to_string())
        .collect();
    out.sort();
    out
}

/// Rewrites the archive with `edit` applied to each (path, content); headers keep their
/// original sizes unless the content changed length.
fn rewrite(src: &Path, dest: &Path, edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) {
    let mut archive = tar::Archive::new(std::fs::File::open(src).unwrap());
    let mut out = tar::Builder::new(std::fs::File::create(dest).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let data = edit(&path, data);
        let mut h = entry.header().clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.append_data(&mut h, &path, data.as_slice()).unwrap();
    }
    out.into_inner().unwrap();
}

fn restore(archive: &Path, config: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "admin".to_owned(),
        "restore".into(),
        archive.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    cli_at(Path::new("/nonexistent.sock"), &refs)
}

#[test]
fn backup_restore_into_a_fresh_daemon_keeps_sandboxes_and_jobs() {
    let extra = format!("  runner_path: {}\n", bin("agent-runner").display());
    let mut d = Daemon::start(&extra);
    let sb = d.json(&[
        "sandbox",
        "new",
        "--profile",
        "interactive-dev",
        "--ttl",
        "30",
    ]);
    let vmid = sb["vmid"].as_u64().unwrap();
    d.wait_sandbox(vmid, |s| s["state"] == "READY");
    let repo = empty_repo(&d);
    let job = d.json(&[
        "job",
        "run",
        "--repo",
        &repo,
        "--task",
        "t",
        "--profile",
        "yolo-ephemeral",
        "--detach",
    ]);
    assert!(job["id"].as_str().unwrap().starts_with("job-"));
    let sandboxes = ids(&d.json(&["sandbox", "ls", "--all"]), "vmid");
    let jobs = ids(&d.json(&["job", "ls"]), "id");
    assert!(
        sandboxes.len() >= 2 && jobs.len() == 1,
        "{sandboxes:?} {jobs:?}"
    );

    let backups = tempfile::tempdir().unwrap();
    let archive = backups.path().join("agentlab.tar");
    let out = d.cli(&["--json", "admin", "backup", archive.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = report["manifest"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"state.db") && files.contains(&"config/config.yaml"),
        "{files:?}"
    );
    assert!(!d.dir.path().join("data").read_dir().unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".backup-")
    }));
    // Refused while the daemon answers.
    let out = restore(&archive, &d.config, &["--force"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it before restoring"));
    d.kill();
    // Refused while another engine holds the data dir, though no socket answers (an embedded
    // program has none): here this test process holds the lock.
    let held = agentlab_host::HostLock::acquire(&d.dir.path().join("data")).unwrap();
    let out = restore(&archive, &d.config, &["--force"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("locked by another AgentLab engine")
            && stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    drop(held);

    // A fresh host: the same config layout under a new directory.
    let fresh = tempfile::tempdir().unwrap();
    let old = d.dir.path().display().to_string();
    let new = fresh.path().display().to_string();
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace(&old, &new);
    let config = fresh.path().join("config.yaml");
    std::fs::write(&config, text).unwrap();
    std::fs::create_dir_all(fresh.path().join("data")).unwrap();
    std::fs::write(fresh.path().join("data/leftover"), "x").unwrap();
    let out = restore(&archive, &config, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    std::fs::remove_file(fresh.path().join("data/leftover")).unwrap();
    let out = restore(&archive, &config, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = fresh.path().join("data/agentlab.db");
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let socket = std::path::PathBuf::from(d.socket.to_str().unwrap().replace(&old, &new));
    let log = fresh.path().join("agentlabd.log");
    let mut child = std::process::Command::new(bin("agentlabd"))
        .arg("--config")
        .arg(&config)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let t0 = std::time::Instant::now();
    while !cli_at(&socket, &["status"]).status.success() {
        assert!(
            t0.elapsed().as_secs() < 30,
            "restored daemon did not start:\n{}",
            read_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        ids(
            &json_at(&socket, &["sandbox", "ls", "--all"], &read_log),
            "vmid"
        ),
        sandboxes
    );
    assert_eq!(
        ids(&json_at(&socket, &["job", "ls"], &read_log), "id"),
        jobs
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn tampered_archives_and_newer_schemas_are_refused() {
    let mut d = Daemon::start("");
    let backups = tempfile::tempdir().unwrap();
    let archive = backups.path().join("b.tar");
    let out = d.cli(&["admin", "backup", archive.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second backup to the same path is refused.
    assert!(
        !d.cli(&["admin", "backup", archive.to_str().unwrap()])
            .status
            .success()
    );
    d.kill();
    let target = tempfile::tempdir().unwrap();
    let config = target.path().join("config.yaml");
    let text = std::fs::read_to_string(&d.config).unwrap().replace(
        &d.dir.path().display().to_string(),
        &target.path().display().to_string(),
    );
    std::fs::write(&config, text).unwrap();

    let tampered = backups.path().join("tampered.tar");
    rewrite(&archive, &tampered, |path, mut data| {
        if path.starts_with("profiles/") {
            data.extend_from_slice(b"# edited\n");
        }
        data
    });
    let out = restore(&tampered, &config, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Checksum mismatch for profiles/"), "{err}");

    let newer = backups.path().join("newer.tar");
    rewrite(&archive, &newer, |path, data| {
        if path != "manifest.json" {
            return data;
        }
        let mut m: serde_json::Value = serde_json::from_slice(&data).unwrap();
        m["schema_version"] = serde_json::json!(999);
        serde_json::to_vec(&m).unwrap()
    });
    let out = restore(&newer, &config, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema version 999 is newer"), "{err}");
    assert!(!target.path().join("data/agentlab.db").exists());
}
