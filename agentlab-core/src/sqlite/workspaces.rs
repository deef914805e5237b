//! The `workspaces` table: unique names, compare-and-set on `attached_to`.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, Row, TransactionBehavior, params_from_iter};

use super::codec::{
    attached_str, get_opt_vmid, get_parsed, get_ts, int, opt_text, opt_vmid, text, ts,
};
use super::error::{SqlResultExt as _, map_insert_err};
use crate::ids::{Vmid, WorkspaceId};
use crate::model::Workspace;
use crate::store::StateStoreError;

const COLUMNS: &str = "id, name, size_gb, volume, attached_to, created_at, updated_at";

fn values(ws: &Workspace) -> Vec<Value> {
    vec![
        text(&ws.id),
        text(&ws.name),
        int(ws.size_gb),
        opt_text(ws.volume.as_ref()),
        opt_vmid(ws.attached_to),
        ts(ws.created_at),
        ts(ws.updated_at),
    ]
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Workspace> {
    Ok(Workspace {
        id: get_parsed(row, "id")?,
        name: row.get("name")?,
        size_gb: row.get("size_gb")?,
        volume: row.get("volume")?,
        attached_to: get_opt_vmid(row, "attached_to")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

/// Whether a row with this id (or, with `name`, this name) exists.
fn exists(conn: &Connection, column: &str, value: &str) -> Result<bool, StateStoreError> {
    let sql = format!("SELECT 1 FROM workspaces WHERE {column} = ?1");
    conn.query_row(&sql, [value], |_| Ok(()))
        .optional()
        .sql()
        .map(|r| r.is_some())
}

/// See [`crate::StateStore::insert_workspace`]: `AlreadyExists` names the clashing id or name.
pub(super) fn insert(conn: &mut Connection, ws: &Workspace) -> Result<(), StateStoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()?;
    if exists(&tx, "id", ws.id.as_str())? {
        return Err(StateStoreError::AlreadyExists {
            kind: "workspace",
            id: ws.id.to_string(),
        });
    }
    if exists(&tx, "name", &ws.name)? {
        return Err(StateStoreError::AlreadyExists {
            kind: "workspace",
            id: ws.name.clone(),
        });
    }
    tx.execute(
        &format!("INSERT INTO workspaces ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params_from_iter(values(ws)),
    )
    .map_err(|e| map_insert_err(e, "workspace", &ws.name))?;
    tx.commit().sql()
}

/// See [`crate::StateStore::get_workspace`]: an id match wins over a name match.
pub(super) fn get(conn: &Connection, id_or_name: &str) -> Result<Workspace, StateStoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM workspaces WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1"
    ))
    .sql()?
    .query_row([id_or_name], from_row)
    .optional()
    .sql()?
    .ok_or_else(|| StateStoreError::NotFound {
        kind: "workspace",
        id: id_or_name.to_owned(),
    })
}

/// See [`crate::StateStore::list_workspaces`].
pub(super) fn list(conn: &Connection) -> Result<Vec<Workspace>, StateStoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM workspaces ORDER BY name"))
        .sql()?;
    let rows = stmt.query_map([], from_row).sql()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().sql()
}

/// Reads the stored `attached_to` of `id`, `NotFound` when missing.
fn stored_attachment(conn: &Connection, id: &WorkspaceId) -> Result<Option<Vmid>, StateStoreError> {
    conn.query_row(
        "SELECT attached_to FROM workspaces WHERE id = ?1",
        [id.as_str()],
        |r| get_opt_vmid(r, "attached_to"),
    )
    .optional()
    .sql()?
    .ok_or_else(|| StateStoreError::NotFound {
        kind: "workspace",
        id: id.to_string(),
    })
}

/// See [`crate::StateStore::update_workspace`].
pub(super) fn update(
    conn: &mut Connection,
    ws: &Workspace,
    expected_attached: Option<Vmid>,
) -> Result<(), StateStoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()?;
    let stored = stored_attachment(&tx, &ws.id)?;
    if stored != expected_attached {
        return Err(StateStoreError::Conflict {
            kind: "workspace",
            id: ws.id.to_string(),
            expected: attached_str(expected_attached),
            actual: attached_str(stored),
        });
    }
    tx.execute(
        "UPDATE workspaces SET name = ?2, size_gb = ?3, volume = ?4, attached_to = ?5, \
         created_at = ?6, updated_at = ?7 WHERE id = ?1",
        params_from_iter(values(ws)),
    )
    .map_err(|e| map_insert_err(e, "workspace", &ws.name))?;
    tx.commit().sql()
}

/// See [`crate::StateStore::delete_workspace`].
pub(super) fn delete(conn: &mut Connection, id: &WorkspaceId) -> Result<(), StateStoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()?;
    if let Some(vmid) = stored_attachment(&tx, id)? {
        return Err(StateStoreError::Conflict {
            kind: "workspace",
            id: id.to_string(),
            expected: attached_str(None),
            actual: vmid.to_string(),
        });
    }
    tx.execute("DELETE FROM workspaces WHERE id = ?1", [id.as_str()])
        .sql()?;
    tx.commit().sql()
}
