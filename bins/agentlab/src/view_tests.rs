//! Exact layouts of the human views.

use chrono::TimeZone;

use agentlab_core::{JobOutcome, JobState, Lease, SandboxState, Vmid};

use super::*;

fn ts(secs: i64) -> Timestamp {
    chrono::Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn sandbox(state: SandboxState, last_error: Option<&str>) -> Sandbox {
    Sandbox {
        vmid: Vmid::new(101).unwrap(),
        name: "agentlab-101".into(),
        profile: "dev".into(),
        state,
        node: None,
        ip: Some("10.77.0.5".parse().unwrap()),
        mac: None,
        iface: None,
        vm_created: true,
        job: Some("job-ab".parse().unwrap()),
        workspace: None,
        lease: Lease {
            expires_at: ts(3600),
            keepalive: true,
            renewable: true,
            ttl_minutes: 60,
        },
        last_error: last_error.map(str::to_owned),
        created_at: ts(0),
        updated_at: ts(10),
    }
}

#[test]
fn show_puts_the_failure_cause_right_after_the_state() {
    let s = sandbox(
        SandboxState::Failed,
        Some("clone_vm failed: template 9000 is locked"),
    );
    let out = sandbox_detail(&s, &ts(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "sandbox:     101 (agentlab-101)");
    assert_eq!(lines[1], "state:       FAILED");
    assert_eq!(
        lines[2],
        "last error:  clone_vm failed: template 9000 is locked"
    );
    assert!(
        out.contains(
            "lease:       expires 2023-11-14 23:13:20 (in 1h00m), 60 min, keepalive, renewable"
        ),
        "{out}"
    );
    assert!(!sandbox_detail(&sandbox(SandboxState::Ready, None), &ts(0)).contains("last error"));
}

#[test]
fn list_table_has_one_row_per_sandbox() {
    let mut destroyed = sandbox(SandboxState::Destroyed, None);
    destroyed.vmid = Vmid::new(102).unwrap();
    destroyed.job = None;
    destroyed.ip = None;
    let out = sandbox_table(&[sandbox(SandboxState::Ready, None), destroyed], &ts(60));
    assert_eq!(
        out,
        "VMID  NAME          PROFILE  STATE      IP         JOB     LEASE\n\
         101   agentlab-101  dev      READY      10.77.0.5  job-ab  in 59m\n\
         102   agentlab-101  dev      DESTROYED  -          -       -\n"
    );
}

#[test]
fn failed_job_result_names_the_step_and_lists_artifacts() {
    let job = Job {
        id: "job-ab".parse().unwrap(),
        repo: "file:///srv/repo.git".into(),
        git_ref: Some("main".into()),
        task: "fix it".into(),
        profile: "dev".into(),
        agent: None,
        state: JobState::Failed,
        sandbox: Some(Vmid::new(101).unwrap()),
        keepalive: false,
        ttl_minutes: 60,
        workspace: None,
        deadline: None,
        runner_token_hash: None,
        step: Some("clone".into()),
        outcome: Some(JobOutcome {
            exit_code: Some(128),
            failed_step: Some("clone".into()),
            error: Some("repository not found".into()),
            ..JobOutcome::default()
        }),
        created_at: ts(0),
        updated_at: ts(5),
        ended_at: Some(ts(5)),
        result: None,
        pushed: None,
    };
    let artifact = Artifact {
        job: job.id.clone(),
        name: "runner.log".into(),
        size: 2048,
        sha256: "ab".repeat(32),
        created_at: ts(5),
    };
    let out = job_result(&job, &[artifact]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "job:          job-ab");
    assert_eq!(lines[2], "state:        FAILED");
    assert_eq!(lines[3], "failed step:  clone");
    assert_eq!(lines[4], "error:        repository not found");
    assert_eq!(lines[5], "exit code:    128");
    assert!(
        out.contains("repo:         file:///srv/repo.git @ main"),
        "{out}"
    );
    assert!(
        out.contains(&format!("runner.log  2.0 KiB  {}", "ab".repeat(32))),
        "{out}"
    );
    assert!(
        out.ends_with("Download with: agentlab job artifacts download job-ab\n"),
        "{out}"
    );
    assert!(job_result(&job, &[]).contains("No artifacts."));
    assert!(
        out.contains("last step:    clone"),
        "a finished job's step is its last: {out}"
    );
    let mut pushed = job.clone();
    pushed.pushed = Some(agentlab_core::model::JobPushed {
        branch: "agentlab/job-ab".into(),
        commit: "c0ffee".into(),
        pr_url: Some("http://forge.test/o/r/pulls/7".into()),
    });
    let out = job_detail(&pushed);
    assert!(
        out.contains("\npushed:        agentlab/job-ab c0ffee\n"),
        "{out}"
    );
    assert!(
        out.contains("\npull request:  http://forge.test/o/r/pulls/7\n"),
        "{out}"
    );
    let mut running = job.clone();
    running.state = JobState::Running;
    assert!(job_detail(&running).contains("\nstep:         clone"));
    assert!(job_table(&[job]).starts_with("ID      STATE   PROFILE  SANDBOX  REPO"));
}

#[test]
fn workspace_and_profile_views() {
    let ws = Workspace {
        id: "ws-1".parse().unwrap(),
        name: "data".into(),
        size_gb: 20,
        volume: None,
        attached_to: Some(Vmid::new(101).unwrap()),
        created_at: ts(0),
        updated_at: ts(0),
    };
    assert_eq!(
        workspace_table(std::slice::from_ref(&ws)),
        "ID    NAME  SIZE    ATTACHED  CREATED\nws-1  data  20 GiB  101       2023-11-14 22:13:20\n"
    );
    assert!(workspace_detail(&ws).contains("volume:       -"));
    let p = ProfileSummary {
        name: "dev".into(),
        template_vmid: 9000,
        cores: 2,
        memory_mb: 4096,
        keepalive_default: false,
        ttl_minutes_default: 120,
    };
    assert_eq!(
        profile_table(&[p]),
        "NAME  TEMPLATE  CORES  MEMORY    TTL   KEEPALIVE\ndev   9000      2      4096 MiB  120m  no\n"
    );
}
