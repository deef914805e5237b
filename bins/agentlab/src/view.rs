//! Human views of the API objects: list tables and detail blocks for sandboxes, jobs,
//! workspaces, artifacts and profiles. Pure functions of the records (and "now"), so the
//! exact layout is unit-tested.

use agentlab_core::api::control::ProfileSummary;
use agentlab_core::{Artifact, Job, Sandbox, Timestamp, Workspace};

use crate::output::{Table, dash, kv, relative, size, time};

/// The sandbox list as a table.
pub fn sandbox_table(list: &[Sandbox], now: &Timestamp) -> String {
    let mut t = Table::new(&["VMID", "NAME", "PROFILE", "STATE", "IP", "JOB", "LEASE"]);
    for s in list {
        let lease = if s.state.is_terminal() {
            "-".to_owned()
        } else {
            relative(&s.lease.expires_at, now)
        };
        t.row(vec![
            s.vmid.to_string(),
            s.name.clone(),
            s.profile.clone(),
            s.state.to_string(),
            dash(s.ip),
            dash(s.job.as_ref()),
            lease,
        ]);
    }
    t.render()
}

/// The `usage` line of `sandbox show`: the VM process's memory and CPU time.
pub fn usage_line(u: &agentlab_core::VmUsage) -> String {
    kv(&[(
        "usage",
        format!(
            "pid {}, {:.0} MiB resident, {:.1} s CPU",
            u.pid,
            u.rss_bytes as f64 / (1024.0 * 1024.0),
            u.cpu_seconds
        ),
    )])
}

/// One sandbox in detail; `last_error` comes right after the state so a failure cause is
/// the first thing a reader sees.
pub fn sandbox_detail(s: &Sandbox, now: &Timestamp) -> String {
    let lease = format!(
        "expires {} ({}), {} min{}{}",
        time(&s.lease.expires_at),
        relative(&s.lease.expires_at, now),
        s.lease.ttl_minutes,
        if s.lease.keepalive { ", keepalive" } else { "" },
        if s.lease.renewable { ", renewable" } else { "" },
    );
    kv(&[
        ("sandbox", format!("{} ({})", s.vmid, s.name)),
        ("state", s.state.to_string()),
        ("last error", s.last_error.clone().unwrap_or_default()),
        ("profile", s.profile.clone()),
        (
            "job",
            s.job.as_ref().map(ToString::to_string).unwrap_or_default(),
        ),
        (
            "workspace",
            s.workspace
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        ("node", s.node.clone().unwrap_or_default()),
        ("ip", s.ip.map(|ip| ip.to_string()).unwrap_or_default()),
        ("mac", s.mac.clone().unwrap_or_default()),
        ("lease", lease),
        ("created", time(&s.created_at)),
        ("updated", time(&s.updated_at)),
    ])
}

/// The job list as a table.
pub fn job_table(jobs: &[Job]) -> String {
    let mut t = Table::new(&["ID", "STATE", "PROFILE", "SANDBOX", "REPO", "CREATED"]);
    for j in jobs {
        t.row(vec![
            j.id.to_string(),
            j.state.to_string(),
            j.profile.clone(),
            dash(j.sandbox),
            j.repo.clone(),
            time(&j.created_at),
        ]);
    }
    t.render()
}

/// One job in detail, with its outcome when it has one.
pub fn job_detail(j: &Job) -> String {
    let o = j.outcome.clone().unwrap_or_default();
    let opt = |v: Option<String>| v.unwrap_or_default();
    kv(&[
        ("job", j.id.to_string()),
        ("state", j.state.to_string()),
        ("failed step", opt(o.failed_step)),
        ("error", opt(o.error)),
        ("exit code", opt(o.exit_code.map(|c| c.to_string()))),
        ("commit", opt(o.commit)),
        ("summary", opt(o.summary)),
        (
            "push branch",
            opt(j.result.as_ref().map(|r| r.branch.clone())),
        ),
        (
            "pushed",
            opt(j
                .pushed
                .as_ref()
                .map(|p| format!("{} {}", p.branch, p.commit))),
        ),
        (
            "pull request",
            opt(j.pushed.as_ref().and_then(|p| p.pr_url.clone())),
        ),
        (
            "duration",
            opt(o
                .duration_ms
                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))),
        ),
        (
            "repo",
            format!(
                "{}{}",
                j.repo,
                j.git_ref
                    .as_ref()
                    .map(|r| format!(" @ {r}"))
                    .unwrap_or_default()
            ),
        ),
        ("task", j.task.clone()),
        ("profile", j.profile.clone()),
        ("agent", opt(j.agent.clone())),
        ("sandbox", opt(j.sandbox.map(|v| v.to_string()))),
        (
            "workspace",
            opt(j.workspace.as_ref().map(ToString::to_string)),
        ),
        (
            // A finished job has no current step, only the last one it reported.
            if j.state.is_terminal() {
                "last step"
            } else {
                "step"
            },
            opt(j.step.clone()),
        ),
        ("created", time(&j.created_at)),
        ("deadline", opt(j.deadline.as_ref().map(time))),
        ("ended", opt(j.ended_at.as_ref().map(time))),
    ])
}

/// The final report: the job's details, its artifacts and how to download them.
pub fn job_result(job: &Job, artifacts: &[Artifact]) -> String {
    let mut out = format!("\n{}", job_detail(job));
    if artifacts.is_empty() {
        out.push_str("\nNo artifacts.\n");
    } else {
        out.push_str(&format!("\nArtifacts:\n{}", artifact_table(artifacts)));
        out.push_str(&format!(
            "Download with: agentlab job artifacts download {}\n",
            job.id
        ));
    }
    out
}

/// The workspace list as a table.
pub fn workspace_table(list: &[Workspace]) -> String {
    let mut t = Table::new(&["ID", "NAME", "SIZE", "ATTACHED", "CREATED"]);
    for w in list {
        t.row(vec![
            w.id.to_string(),
            w.name.clone(),
            format!("{} GiB", w.size_gb),
            dash(w.attached_to),
            time(&w.created_at),
        ]);
    }
    t.render()
}

/// One workspace in detail.
pub fn workspace_detail(w: &Workspace) -> String {
    kv(&[
        ("workspace", format!("{} ({})", w.id, w.name)),
        ("size", format!("{} GiB", w.size_gb)),
        ("attached to", dash(w.attached_to)),
        ("volume", dash(w.volume.as_ref())),
        ("created", time(&w.created_at)),
        ("updated", time(&w.updated_at)),
    ])
}

/// The artifact list as a table.
pub fn artifact_table(list: &[Artifact]) -> String {
    let mut t = Table::new(&["NAME", "SIZE", "SHA256", "CREATED"]);
    for a in list {
        t.row(vec![
            a.name.clone(),
            size(a.size),
            a.sha256.clone(),
            time(&a.created_at),
        ]);
    }
    t.render()
}

/// The profile list as a table.
pub fn profile_table(list: &[ProfileSummary]) -> String {
    let mut t = Table::new(&["NAME", "TEMPLATE", "CORES", "MEMORY", "TTL", "KEEPALIVE"]);
    for p in list {
        t.row(vec![
            p.name.clone(),
            p.template_vmid.to_string(),
            p.cores.to_string(),
            format!("{} MiB", p.memory_mb),
            format!("{}m", p.ttl_minutes_default),
            if p.keepalive_default { "yes" } else { "no" }.to_owned(),
        ]);
    }
    t.render()
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
