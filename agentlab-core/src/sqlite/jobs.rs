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
use crate::model::{Job, JobOutcome, JobPushed};
use crate::state::JobState;
use crate::store::{JobCursor, JobFilter, JobPage, StateStoreError, check_job_transition};

const COLUMNS: &str = "id, repo, git_ref, task, profile, agent, state, sandbox, keepalive, \
     ttl_minutes, workspace, deadline, runner_token_hash, step, outcome, created_at, \
     updated_at, ended_at, result_spec, pushed_branch, pushed_commit, pr_url";

const INSERT: &str = "INSERT INTO jobs (id, repo, git_ref, task, profile, agent, state, \
     sandbox, keepalive, ttl_minutes, workspace, deadline, runner_token_hash, step, outcome, \
     created_at, updated_at, ended_at, result_spec, pushed_branch, pushed_commit, pr_url) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
     ?19, ?20, ?21, ?22)";

/// Compare-and-set update; `?23` is the expected state.
const UPDATE: &str = "UPDATE jobs SET repo = ?2, git_ref = ?3, task = ?4, profile = ?5, \
     agent = ?6, state = ?7, sandbox = ?8, keepalive = ?9, ttl_minutes = ?10, \
     workspace = ?11, deadline = ?12, runner_token_hash = ?13, step = ?14, outcome = ?15, \
     created_at = ?16, updated_at = ?17, ended_at = ?18, result_spec = ?19, \
     pushed_branch = ?20, pushed_commit = ?21, pr_url = ?22 \
     WHERE id = ?1 AND state = ?23";

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
        match &job.result {
            Some(r) => json(r)?,
            None => Value::Null,
        },
        opt_text(job.pushed.as_ref().map(|p| &p.branch)),
        opt_text(job.pushed.as_ref().map(|p| &p.commit)),
        opt_text(job.pushed.as_ref().and_then(|p| p.pr_url.as_ref())),
    ])
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let outcome: Option<String> = row.get("outcome")?;
    let outcome = outcome
        .map(|s| serde_json::from_str::<JobOutcome>(&s).map_err(|e| corrupt("outcome", e)))
        .transpose()?;
    let result: Option<String> = row.get("result_spec")?;
    let result = result
        .map(|s| serde_json::from_str(&s).map_err(|e| corrupt("result_spec", e)))
        .transpose()?;
    let branch: Option<String> = row.get("pushed_branch")?;
    let commit: Option<String> = row.get("pushed_commit")?;
    let pr_url: Option<String> = row.get("pr_url")?;
    let pushed = branch.zip(commit).map(|(branch, commit)| JobPushed {
        branch,
        commit,
        pr_url,
    });
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
        result,
        pushed,
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

/// See [`crate::StateStore::list_jobs_page`]: newest first (creation time, then insertion
/// order, i.e. `rowid`), after the cursor, one row more than the limit to tell whether a next
/// page exists. Served by the `jobs_created` / `jobs_state_created` indexes.
pub(super) fn page(conn: &Connection, filter: &JobFilter) -> Result<JobPage, StateStoreError> {
    let mut sql = format!("SELECT {COLUMNS}, rowid AS seq FROM jobs WHERE 1 = 1");
    let mut args: Vec<Value> = filter.states.iter().map(text).collect();
    if !args.is_empty() {
        let marks = vec!["?"; args.len()].join(", ");
        sql.push_str(&format!(" AND state IN ({marks})"));
    }
    if let Some(c) = filter.after {
        sql.push_str(" AND (created_at, rowid) < (?, ?)");
        args.push(ts(c.created_at));
        args.push(Value::Integer(c.seq));
    }
    sql.push_str(" ORDER BY created_at DESC, rowid DESC");
    if let Some(limit) = filter.limit {
        sql.push_str(" LIMIT ?");
        args.push(int(i64::from(limit) + 1));
    }
    let mut stmt = conn.prepare_cached(&sql).sql()?;
    let rows = stmt
        .query_map(params_from_iter(args), |row| {
            Ok((from_row(row)?, row.get::<_, i64>("seq")?))
        })
        .sql()?;
    let mut rows = rows.collect::<rusqlite::Result<Vec<_>>>().sql()?;
    let mut next = None;
    if let Some(limit) = filter.limit
        && rows.len() > limit as usize
    {
        rows.truncate(limit as usize);
        next = rows.last().map(|(job, seq)| JobCursor {
            created_at: job.created_at,
            seq: *seq,
        });
    }
    Ok(JobPage {
        jobs: rows.into_iter().map(|(job, _)| job).collect(),
        next,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::JobCursor;

    /// The plan of every page query: an index range, never a scan of the table or a sort.
    fn plan(conn: &Connection, filter: &JobFilter) -> String {
        let mut sql =
            format!("EXPLAIN QUERY PLAN SELECT {COLUMNS}, rowid AS seq FROM jobs WHERE 1 = 1");
        let mut args: Vec<Value> = filter.states.iter().map(text).collect();
        if !args.is_empty() {
            sql.push_str(" AND state IN (?)");
        }
        if let Some(c) = filter.after {
            sql.push_str(" AND (created_at, rowid) < (?, ?)");
            args.push(ts(c.created_at));
            args.push(Value::Integer(c.seq));
        }
        sql.push_str(" ORDER BY created_at DESC, rowid DESC LIMIT 21");
        let mut stmt = conn.prepare(&sql).expect("prepare");
        let rows = stmt
            .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .expect("plan");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn job_pages_are_index_ranges() {
        let mut conn = Connection::open_in_memory().expect("open");
        super::super::migrations::migrate_to(&mut conn, super::super::migrations::LATEST)
            .expect("migrate");
        let cursor = Some(JobCursor {
            created_at: chrono::DateTime::from_timestamp_millis(1_000).expect("ts"),
            seq: 7,
        });
        for filter in [
            JobFilter::default(),
            JobFilter {
                after: cursor,
                ..JobFilter::default()
            },
            JobFilter {
                states: vec![JobState::Queued],
                after: cursor,
                ..JobFilter::default()
            },
        ] {
            let plan = plan(&conn, &filter);
            assert!(plan.contains("USING INDEX jobs_"), "{filter:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{filter:?} sorts: {plan}");
        }
    }
}
