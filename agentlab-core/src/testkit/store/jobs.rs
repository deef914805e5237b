//! Conformance checks for jobs (CAS, legality, newest-first listing) and artifacts.

use super::{ok, plus_secs, sample_artifact, sample_job, t0, vmid};
use crate::ids::{JobId, WorkspaceId};
use crate::model::{Artifact, Job, JobOutcome};
use crate::state::JobState;
use crate::store::{JobFilter, StateStore, StateStoreError};
use crate::token::hash_token;

pub(super) async fn jobs(store: &dyn StateStore) {
    let mut job = sample_job(t0());
    job.sandbox = Some(vmid(1001));
    job.workspace = Some(WorkspaceId::generate());
    assert_err!(
        store.get_job(&job.id).await,
        StateStoreError::NotFound { kind: "job", .. },
        "get missing job"
    );
    ok(store.insert_job(&job).await, "insert_job");
    assert_eq!(
        ok(store.get_job(&job.id).await, "get_job"),
        job,
        "job round trip (incl. runner_token_hash)"
    );
    assert_err!(
        store.insert_job(&job).await,
        StateStoreError::AlreadyExists { kind: "job", .. },
        "duplicate job"
    );

    let stale = job.clone();
    job.state = JobState::Running;
    job.step = Some("agent".to_owned());
    ok(
        store.update_job(&job, JobState::Queued).await,
        "QUEUED -> RUNNING",
    );
    assert_eq!(
        ok(store.get_job(&job.id).await, "get_job"),
        job,
        "job update writes every field"
    );
    let mut racer = stale;
    racer.state = JobState::Cancelled;
    assert_err!(
        store.update_job(&racer, JobState::Queued).await,
        StateStoreError::Conflict { kind: "job", .. },
        "stale job CAS"
    );
    let mut back = job.clone();
    back.state = JobState::Queued;
    assert_err!(
        store.update_job(&back, JobState::Running).await,
        StateStoreError::IllegalTransition { kind: "job", .. },
        "RUNNING -> QUEUED"
    );
    job.state = JobState::Completed;
    job.ended_at = Some(plus_secs(t0(), 90));
    job.outcome = Some(JobOutcome {
        exit_code: Some(0),
        duration_ms: Some(90_000),
        commit: Some("abc123".to_owned()),
        ..JobOutcome::default()
    });
    // Results back to git: the resolved spec and what was pushed are kept too.
    job.result = Some(crate::model::JobResultSpec {
        branch: "agentlab/x".to_owned(),
        commit_leftovers: true,
        pull_request: Some(crate::model::PullRequestSpec {
            forge: "gitea".to_owned(),
            api_url: "http://127.0.0.1:3000".to_owned(),
            owner: "o".to_owned(),
            repo: "r".to_owned(),
            title: "t".to_owned(),
            base: None,
        }),
    });
    job.pushed = Some(crate::model::JobPushed {
        branch: "agentlab/x".to_owned(),
        commit: "abc123".to_owned(),
        pr_url: Some("http://127.0.0.1:3000/o/r/pulls/1".to_owned()),
    });
    ok(
        store.update_job(&job, JobState::Running).await,
        "RUNNING -> COMPLETED",
    );
    assert_eq!(
        ok(store.get_job(&job.id).await, "get_job"),
        job,
        "outcome round trip"
    );
    let mut revive = job.clone();
    revive.state = JobState::Running;
    assert_err!(
        store.update_job(&revive, JobState::Completed).await,
        StateStoreError::IllegalTransition { .. },
        "COMPLETED -> RUNNING"
    );
    let missing = sample_job(t0());
    assert_err!(
        store.update_job(&missing, JobState::Queued).await,
        StateStoreError::NotFound { kind: "job", .. },
        "update missing job"
    );

    let older = sample_job(plus_secs(t0(), -60));
    let newer = sample_job(plus_secs(t0(), 60));
    ok(store.insert_job(&newer).await, "insert_job");
    ok(store.insert_job(&older).await, "insert_job");
    let ours = [&job.id, &older.id, &newer.id];
    let ids = |list: Vec<Job>| -> Vec<JobId> {
        list.into_iter()
            .map(|j| j.id)
            .filter(|id| ours.contains(&id))
            .collect()
    };
    let all = ids(ok(
        store.list_jobs(&JobFilter::default()).await,
        "list_jobs",
    ));
    assert_eq!(
        all,
        [newer.id.clone(), job.id.clone(), older.id.clone()],
        "jobs newest first"
    );
    let queued = JobFilter {
        states: vec![JobState::Queued],
        ..JobFilter::default()
    };
    assert_eq!(
        ids(ok(store.list_jobs(&queued).await, "list_jobs")),
        [newer.id.clone(), older.id.clone()],
        "filter by state"
    );
    let one = JobFilter {
        limit: Some(1),
        ..JobFilter::default()
    };
    assert_eq!(
        ok(store.list_jobs(&one).await, "list_jobs").len(),
        1,
        "limit"
    );
}

pub(super) async fn artifacts(store: &dyn StateStore) {
    let job = sample_job(t0());
    let orphan = sample_artifact(&job.id, "a.txt", t0());
    assert_err!(
        store.put_artifact(&orphan).await,
        StateStoreError::NotFound { kind: "job", .. },
        "artifact of an unknown job"
    );
    ok(store.insert_job(&job).await, "insert_job");
    let old = sample_artifact(&job.id, "b.log", plus_secs(t0(), -86_400));
    ok(store.put_artifact(&old).await, "put_artifact");
    ok(store.put_artifact(&orphan).await, "put_artifact");
    let names = |list: Vec<Artifact>| list.into_iter().map(|a| a.name).collect::<Vec<_>>();
    assert_eq!(
        names(ok(store.list_artifacts(&job.id).await, "list_artifacts")),
        ["a.txt", "b.log"],
        "artifacts by name"
    );
    let mut bigger = orphan.clone();
    bigger.size = 4096;
    bigger.sha256 = hash_token("bigger");
    ok(store.put_artifact(&bigger).await, "put_artifact replaces");
    assert_eq!(
        ok(store.list_artifacts(&job.id).await, "list_artifacts"),
        [bigger.clone(), old.clone()],
        "artifact replaced in place"
    );
    let expired: Vec<Artifact> = ok(
        store.artifacts_before(plus_secs(t0(), -60)).await,
        "artifacts_before",
    )
    .into_iter()
    .filter(|a| a.job == job.id)
    .collect();
    assert_eq!(
        expired.as_slice(),
        std::slice::from_ref(&old),
        "artifacts_before"
    );
    ok(
        store.delete_artifact(&job.id, "b.log").await,
        "delete_artifact",
    );
    assert_err!(
        store.delete_artifact(&job.id, "b.log").await,
        StateStoreError::NotFound {
            kind: "artifact",
            ..
        },
        "delete twice"
    );
    assert_eq!(
        ok(store.list_artifacts(&job.id).await, "list_artifacts"),
        [bigger],
        "one left"
    );
}
