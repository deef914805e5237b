//! The `events` table: append-only, ids from `AUTOINCREMENT` so they never repeat even after
//! trimming.

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params_from_iter};

use super::codec::{
    corrupt, get_json, get_opt_parsed, get_opt_vmid, get_ts, int, json, opt_text, opt_vmid, text,
    ts,
};
use super::error::SqlResultExt as _;
use crate::event::{Event, EventKind, EventQuery, NewEvent};
use crate::ids::JobId;
use crate::store::StateStoreError;

const COLUMNS: &str = "id, ts, kind, sandbox, job, message, payload";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let kind: String = row.get("kind")?;
    Ok(Event {
        id: row.get("id")?,
        ts: get_ts(row, "ts")?,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("kind", format_args!("{kind:?}")))?,
        sandbox: get_opt_vmid(row, "sandbox")?,
        job: get_opt_parsed(row, "job")?,
        message: row.get("message")?,
        payload: get_json(row, "payload")?,
    })
}

/// See [`crate::StateStore::append_event`].
pub(super) fn append(conn: &Connection, ev: NewEvent) -> Result<Event, StateStoreError> {
    let args = vec![
        ts(ev.ts),
        text(ev.kind),
        opt_vmid(ev.sandbox),
        opt_text(ev.job.as_ref()),
        text(&ev.message),
        json(&ev.payload)?,
    ];
    conn.prepare_cached(
        "INSERT INTO events (ts, kind, sandbox, job, message, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .sql()?
    .execute(params_from_iter(args))
    .sql()?;
    Ok(Event {
        id: conn.last_insert_rowid(),
        ts: ev.ts,
        kind: ev.kind,
        sandbox: ev.sandbox,
        job: ev.job,
        message: ev.message,
        payload: ev.payload,
    })
}

/// See [`crate::StateStore::events`]: filter, then `tail` (last N), then `limit` (first N of
/// what is left); always ascending ids.
pub(super) fn query(conn: &Connection, q: &EventQuery) -> Result<Vec<Event>, StateStoreError> {
    let mut filter = String::from("1 = 1");
    let mut args: Vec<Value> = Vec::new();
    if let Some(vmid) = q.sandbox {
        filter.push_str(" AND sandbox = ?");
        args.push(int(vmid.get()));
    }
    if let Some(job) = &q.job {
        filter.push_str(" AND job = ?");
        args.push(text(job));
    }
    if let Some(after) = q.after {
        filter.push_str(" AND id > ?");
        args.push(int(after));
    }
    if !q.kinds.is_empty() {
        let marks = vec!["?"; q.kinds.len()].join(", ");
        filter.push_str(&format!(" AND kind IN ({marks})"));
        args.extend(q.kinds.iter().map(text));
    }
    let mut sql = match q.tail {
        Some(tail) => {
            args.push(int(tail));
            format!(
                "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM events WHERE {filter} \
                 ORDER BY id DESC LIMIT ?) ORDER BY id"
            )
        }
        None => format!("SELECT {COLUMNS} FROM events WHERE {filter} ORDER BY id"),
    };
    if let Some(limit) = q.limit {
        sql.push_str(" LIMIT ?");
        args.push(int(limit));
    }
    let mut stmt = conn.prepare_cached(&sql).sql()?;
    let rows = stmt.query_map(params_from_iter(args), from_row).sql()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().sql()
}

/// See [`crate::StateStore::trim_job_logs`].
pub(super) fn trim_job_logs(
    conn: &Connection,
    job: &JobId,
    keep: u32,
) -> Result<u64, StateStoreError> {
    let kind = EventKind::JobLog.as_str();
    let deleted = conn
        .execute(
            "DELETE FROM events WHERE job = ?1 AND kind = ?2 AND id NOT IN \
             (SELECT id FROM events WHERE job = ?1 AND kind = ?2 ORDER BY id DESC LIMIT ?3)",
            rusqlite::params![job.as_str(), kind, keep],
        )
        .sql()?;
    Ok(deleted as u64)
}

/// See [`crate::StateStore::event_count`].
pub(super) fn count(conn: &Connection) -> Result<u64, StateStoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM events")
        .sql()?
        .query_row([], |r| r.get(0))
        .sql()?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Appends `events` in one transaction with one prepared statement (bulk loads: imports,
/// benchmarks). Returns how many were stored.
pub(super) fn append_many(
    conn: &mut Connection,
    events: Vec<NewEvent>,
) -> Result<u64, StateStoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .sql()?;
    let mut n = 0;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO events (ts, kind, sandbox, job, message, payload) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .sql()?;
        for ev in events {
            let args = vec![
                ts(ev.ts),
                text(ev.kind),
                opt_vmid(ev.sandbox),
                opt_text(ev.job.as_ref()),
                text(&ev.message),
                json(&ev.payload)?,
            ];
            n += stmt.execute(params_from_iter(args)).sql()? as u64;
        }
    }
    tx.commit().sql()?;
    Ok(n)
}

impl super::SqliteStore {
    /// Appends many events in one transaction (bulk loads: imports, benchmarks); ids are
    /// assigned in order, as by [`crate::StateStore::append_event`]. Followers are not woken.
    pub async fn append_events_bulk(&self, events: Vec<NewEvent>) -> Result<u64, StateStoreError> {
        self.run(move |c| append_many(c, events)).await
    }
}
