//! The `jobs` table. `runner_token_hash` has its own column (it is only skipped by serde).

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, Row, params_from_iter};

use super::cas::Cas;
use super::codec::{
    bool_, corrupt, get_opt_parsed, get_opt_ts, get_opt_vmid, get_parsed, get_ts, int, json,
    opt_text, opt_ts, opt_vmid, text, ts,
};
use super::error::{SqlResultExt as _, map_insert_err};
use crate::ids::JobId;
use crate::model::{Job, JobOutcome};
use crate::state::JobState;
use crate::store::{JobFilter, StateStoreError, check_job_transition};

const COLUMNS: &str = "id, repo, git_ref, task, profile, agent, state, sandbox, keepalive, \
     ttl_minutes, workspace, deadline, runner_token_hash, step, outcome, created_at, \
     updated_at, ended_at";

const INSERT: &str = "INSERT INTO jobs (id, repo, git_ref, task, profile, agent, state, \
     sandbox, keepalive, ttl_minutes, workspace, deadline, runner_token_hash, step, outcome, \
     created_at, updated_at, ended_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

/// Compare-and-set update; `?19` is the expected state.
const UPDATE: &str = "UPDATE jobs SET repo = ?2, git_ref = ?3, task = ?4, profile = ?5, \
     agent = ?6, state = ?7, sandbox = ?8, keepalive = ?9, ttl_minutes = ?10, \
     workspace = ?11, deadline = ?12, runner_token_hash = ?13, step = ?14, outcome = ?15, \
     created_at = ?16, updated_at = ?17, ended_at = ?18 \
     WHERE id = ?1 AND state = ?19";

/// Column values in [`COLUMNS`] order.
fn values(job: &Job) -> Result<Vec<Value>, StateStoreError> {
    let outcome = match &job.outcome {
        Some(o) => json(o)?,
        None => Value::Null,
    };
    Ok(vec![
        text(&job.id),
        text(&job.repo),
        opt_text(job.git_ref.as_ref()),
        text(&job.task),
        text(&job.profile),
        opt_text(job.agent.as_ref()),
        text(job.state),
        opt_vmid(job.sandbox),
        bool_(job.keepalive),
        int(job.ttl_minutes),
        opt_text(job.workspace.as_ref()),
        opt_ts(job.deadline),
        opt_text(job.runner_token_hash.as_ref()),
        opt_text(job.step.as_ref()),
        outcome,
        ts(job.created_at),
        ts(job.updated_at),
        opt_ts(job.ended_at),
    ])
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let outcome: Option<String> = row.get("outcome")?;
    let outcome = outcome
        .map(|s| serde_json::from_str::<JobOutcome>(&s).map_err(|e| corrupt("outcome", e)))
        .transpose()?;
    Ok(Job {
        id: get_parsed(row, "id")?,
        repo: row.get("repo")?,
        git_ref: row.get("git_ref")?,
        task: row.get("task")?,
        profile: row.get("profile")?,
        agent: row.get("agent")?,
        state: get_parsed(row, "state")?,
        sandbox: get_opt_vmid(row, "sandbox")?,
        keepalive: row.get("keepalive")?,
        ttl_minutes: row.get("ttl_minutes")?,
        workspace: get_opt_parsed(row, "workspace")?,
        deadline: get_opt_ts(row, "deadline")?,
        runner_token_hash: row.get("runner_token_hash")?,
        step: row.get("step")?,
        outcome,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
        ended_at: get_opt_ts(row, "ended_at")?,
    })
}

/// See [`crate::StateStore::insert_job`].
pub(super) fn insert(conn: &Connection, job: &Job) -> Result<(), StateStoreError> {
    conn.prepare_cached(INSERT)
        .sql()?
        .execute(params_from_iter(values(job)?))
        .map_err(|e| map_insert_err(e, "job", job.id.as_str()))?;
    Ok(())
}

/// See [`crate::StateStore::get_job`].
pub(super) fn get(conn: &Connection, id: &JobId) -> Result<Job, StateStoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))
        .sql()?
        .query_row([id.as_str()], from_row)
        .optional()
        .sql()?
        .ok_or_else(|| StateStoreError::NotFound {
            kind: "job",
            id: id.to_string(),
        })
}

/// See [`crate::StateStore::list_jobs`]: newest first (creation time, then insertion order).
pub(super) fn list(conn: &Connection, filter: &JobFilter) -> Result<Vec<Job>, StateStoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM jobs");
    let mut args: Vec<Value> = filter.states.iter().map(text).collect();
    if !args.is_empty() {
        let marks = vec!["?"; args.len()].join(", ");
        sql.push_str(&format!(" WHERE state IN ({marks})"));
    }
    sql.push_str(" ORDER BY created_at DESC, rowid DESC");
    if let Some(limit) = filter.limit {
        sql.push_str(" LIMIT ?");
        args.push(int(limit));
    }
    let mut stmt = conn.prepare_cached(&sql).sql()?;
    let rows = stmt.query_map(params_from_iter(args), from_row).sql()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().sql()
}

/// See [`crate::StateStore::update_job`]: legality first, then compare-and-set.
pub(super) fn update(
    conn: &mut Connection,
    job: &Job,
    expected: JobState,
) -> Result<(), StateStoreError> {
    if expected != job.state && !expected.can_transition_to(job.state) {
        return check_job_transition(&job.id, expected, expected, job.state);
    }
    let mut args = values(job)?;
    args.push(text(expected));
    let cas = Cas {
        kind: "job",
        id: job.id.to_string(),
        key: Value::Text(job.id.to_string()),
        update: UPDATE,
        select: "SELECT state FROM jobs WHERE id = ?1",
    };
    cas.run(conn, args, expected, |stored| {
        check_job_transition(&job.id, stored, expected, job.state)
    })
}
