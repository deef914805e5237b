//! The `sandboxes` table.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, Row, params_from_iter};

use super::cas::Cas;
use super::codec::{
    bool_, get_opt_parsed, get_parsed, get_ts, get_vmid, int, opt_text, text, ts, vmid,
};
use super::error::SqlResultExt as _;
use crate::ids::Vmid;
use crate::model::{Lease, Sandbox};
use crate::state::SandboxState;
use crate::store::{SandboxFilter, StateStoreError, check_sandbox_transition};

const COLUMNS: &str = "vmid, name, profile, state, node, ip, mac, iface, vm_created, job, \
     workspace, lease_expires_at, lease_keepalive, lease_renewable, lease_ttl_minutes, \
     last_error, created_at, updated_at";

/// Insert, or replace a DESTROYED row with the same vmid (atomic upsert).
const INSERT: &str = "INSERT INTO sandboxes (vmid, name, profile, state, node, ip, mac, iface, \
     vm_created, job, workspace, lease_expires_at, lease_keepalive, lease_renewable, \
     lease_ttl_minutes, last_error, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
     ON CONFLICT (vmid) DO UPDATE SET name = ?2, profile = ?3, state = ?4, node = ?5, ip = ?6, \
     mac = ?7, iface = ?8, vm_created = ?9, job = ?10, workspace = ?11, lease_expires_at = ?12, \
     lease_keepalive = ?13, lease_renewable = ?14, lease_ttl_minutes = ?15, last_error = ?16, \
     created_at = ?17, updated_at = ?18 \
     WHERE sandboxes.state = 'DESTROYED'";

/// Compare-and-set update; `?19` is the expected state.
const UPDATE: &str = "UPDATE sandboxes SET name = ?2, profile = ?3, state = ?4, node = ?5, \
     ip = ?6, mac = ?7, iface = ?8, vm_created = ?9, job = ?10, workspace = ?11, \
     lease_expires_at = ?12, lease_keepalive = ?13, lease_renewable = ?14, \
     lease_ttl_minutes = ?15, last_error = ?16, created_at = ?17, updated_at = ?18 \
     WHERE vmid = ?1 AND state = ?19";

/// Column values in [`COLUMNS`] order.
fn values(sb: &Sandbox) -> Vec<Value> {
    vec![
        vmid(sb.vmid),
        text(&sb.name),
        text(&sb.profile),
        text(sb.state),
        opt_text(sb.node.as_ref()),
        opt_text(sb.ip),
        opt_text(sb.mac.as_ref()),
        opt_text(sb.iface.as_ref()),
        bool_(sb.vm_created),
        opt_text(sb.job.as_ref()),
        opt_text(sb.workspace.as_ref()),
        ts(sb.lease.expires_at),
        bool_(sb.lease.keepalive),
        bool_(sb.lease.renewable),
        int(sb.lease.ttl_minutes),
        opt_text(sb.last_error.as_ref()),
        ts(sb.created_at),
        ts(sb.updated_at),
    ]
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Sandbox> {
    Ok(Sandbox {
        vmid: get_vmid(row, "vmid")?,
        name: row.get("name")?,
        profile: row.get("profile")?,
        state: get_parsed(row, "state")?,
        node: row.get("node")?,
        ip: get_opt_parsed(row, "ip")?,
        mac: row.get("mac")?,
        iface: row.get("iface")?,
        vm_created: row.get("vm_created")?,
        job: get_opt_parsed(row, "job")?,
        workspace: get_opt_parsed(row, "workspace")?,
        lease: Lease {
            expires_at: get_ts(row, "lease_expires_at")?,
            keepalive: row.get("lease_keepalive")?,
            renewable: row.get("lease_renewable")?,
            ttl_minutes: row.get("lease_ttl_minutes")?,
        },
        last_error: row.get("last_error")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

/// See [`crate::StateStore::insert_sandbox`].
pub(super) fn insert(conn: &Connection, sb: &Sandbox) -> Result<(), StateStoreError> {
    let changed = conn
        .prepare_cached(INSERT)
        .sql()?
        .execute(params_from_iter(values(sb)))
        .sql()?;
    if changed == 0 {
        return Err(StateStoreError::AlreadyExists {
            kind: "sandbox",
            id: sb.vmid.to_string(),
        });
    }
    Ok(())
}

/// See [`crate::StateStore::get_sandbox`].
pub(super) fn get(conn: &Connection, id: Vmid) -> Result<Sandbox, StateStoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sandboxes WHERE vmid = ?1"))
        .sql()?
        .query_row([id.get()], from_row)
        .optional()
        .sql()?
        .ok_or_else(|| StateStoreError::NotFound {
            kind: "sandbox",
            id: id.to_string(),
        })
}

/// See [`crate::StateStore::list_sandboxes`].
pub(super) fn list(
    conn: &Connection,
    filter: &SandboxFilter,
) -> Result<Vec<Sandbox>, StateStoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM sandboxes WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    if !filter.states.is_empty() {
        let marks = vec!["?"; filter.states.len()].join(", ");
        sql.push_str(&format!(" AND state IN ({marks})"));
        args.extend(filter.states.iter().map(text));
    } else if !filter.include_destroyed {
        sql.push_str(" AND state <> 'DESTROYED'");
    }
    if let Some(profile) = &filter.profile {
        sql.push_str(" AND profile = ?");
        args.push(text(profile));
    }
    if let Some(after) = filter.after {
        sql.push_str(" AND vmid > ?");
        args.push(vmid(after));
    }
    sql.push_str(" ORDER BY vmid");
    if let Some(limit) = filter.limit {
        sql.push_str(" LIMIT ?");
        args.push(int(limit));
    }
    let mut stmt = conn.prepare_cached(&sql).sql()?;
    let rows = stmt.query_map(params_from_iter(args), from_row).sql()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().sql()
}

/// See [`crate::StateStore::update_sandbox`]: legality first, then compare-and-set.
pub(super) fn update(
    conn: &mut Connection,
    sb: &Sandbox,
    expected: SandboxState,
) -> Result<(), StateStoreError> {
    if expected != sb.state && !expected.can_transition_to(sb.state) {
        return check_sandbox_transition(sb.vmid, expected, expected, sb.state);
    }
    let mut args = values(sb);
    args.push(text(expected));
    let cas = Cas {
        kind: "sandbox",
        id: sb.vmid.to_string(),
        key: Value::Integer(i64::from(sb.vmid.get())),
        update: UPDATE,
        select: "SELECT state FROM sandboxes WHERE vmid = ?1",
    };
    cas.run(conn, args, expected, |stored| {
        check_sandbox_transition(sb.vmid, stored, expected, sb.state)
    })
}
