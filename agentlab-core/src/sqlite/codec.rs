//! Column encodings shared by the table modules: timestamps as integer milliseconds, ids and
//! states as text, JSON as text, booleans as 0/1.

use std::fmt::Display;
use std::str::FromStr;

use rusqlite::types::{Type, Value};

use crate::ids::Vmid;
use crate::time::Timestamp;

/// A stored value that does not decode (a corrupt or foreign row).
#[derive(Debug, thiserror::Error)]
#[error("Column {column} holds an invalid value: {reason}")]
struct CorruptValue {
    column: &'static str,
    reason: String,
}

/// A decode error for `column`.
pub(super) fn corrupt(column: &'static str, reason: impl Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        Type::Text,
        Box::new(CorruptValue {
            column,
            reason: reason.to_string(),
        }),
    )
}

/// Milliseconds since the epoch.
pub(super) fn ts(t: Timestamp) -> Value {
    Value::Integer(t.timestamp_millis())
}

/// An optional timestamp.
pub(super) fn opt_ts(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, ts)
}

/// Text.
pub(super) fn text(s: impl Display) -> Value {
    Value::Text(s.to_string())
}

/// Optional text.
pub(super) fn opt_text<T: Display>(s: Option<T>) -> Value {
    s.map_or(Value::Null, text)
}

/// An integer.
pub(super) fn int(n: impl Into<i64>) -> Value {
    Value::Integer(n.into())
}

/// A vmid.
pub(super) fn vmid(v: Vmid) -> Value {
    Value::Integer(i64::from(v.get()))
}

/// An optional vmid.
pub(super) fn opt_vmid(v: Option<Vmid>) -> Value {
    v.map_or(Value::Null, vmid)
}

/// A boolean as 0/1.
pub(super) fn bool_(b: bool) -> Value {
    Value::Integer(i64::from(b))
}

/// Reads a timestamp column.
pub(super) fn get_ts(row: &rusqlite::Row<'_>, column: &'static str) -> rusqlite::Result<Timestamp> {
    let ms: i64 = row.get(column)?;
    ts_from_millis(column, ms)
}

/// Reads an optional timestamp column.
pub(super) fn get_opt_ts(
    row: &rusqlite::Row<'_>,
    column: &'static str,
) -> rusqlite::Result<Option<Timestamp>> {
    let ms: Option<i64> = row.get(column)?;
    ms.map(|ms| ts_from_millis(column, ms)).transpose()
}

fn ts_from_millis(column: &'static str, ms: i64) -> rusqlite::Result<Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| corrupt(column, format_args!("timestamp {ms} out of range")))
}

/// Reads a text column and parses it.
pub(super) fn get_parsed<T>(row: &rusqlite::Row<'_>, column: &'static str) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    let s: String = row.get(column)?;
    s.parse().map_err(|e| corrupt(column, e))
}

/// Reads an optional text column and parses it.
pub(super) fn get_opt_parsed<T>(
    row: &rusqlite::Row<'_>,
    column: &'static str,
) -> rusqlite::Result<Option<T>>
where
    T: FromStr,
    T::Err: Display,
{
    let s: Option<String> = row.get(column)?;
    s.map(|s| s.parse().map_err(|e| corrupt(column, e)))
        .transpose()
}

/// Reads a vmid column.
pub(super) fn get_vmid(row: &rusqlite::Row<'_>, column: &'static str) -> rusqlite::Result<Vmid> {
    let n: u32 = row.get(column)?;
    Vmid::new(n).map_err(|e| corrupt(column, e))
}

/// Reads an optional vmid column.
pub(super) fn get_opt_vmid(
    row: &rusqlite::Row<'_>,
    column: &'static str,
) -> rusqlite::Result<Option<Vmid>> {
    let n: Option<u32> = row.get(column)?;
    n.map(|n| Vmid::new(n).map_err(|e| corrupt(column, e)))
        .transpose()
}

/// Reads a JSON text column.
pub(super) fn get_json<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    column: &'static str,
) -> rusqlite::Result<T> {
    let s: String = row.get(column)?;
    serde_json::from_str(&s).map_err(|e| corrupt(column, e))
}

/// Serialises a value as JSON text.
pub(super) fn json<T: serde::Serialize>(v: &T) -> Result<Value, crate::StateStoreError> {
    serde_json::to_string(v)
        .map(Value::Text)
        .map_err(|e| crate::StateStoreError::Backend(Box::new(e)))
}

/// Formats an optional attachment for conflict messages.
pub(super) fn attached_str(v: Option<Vmid>) -> String {
    v.map_or_else(|| "detached".to_owned(), |v| v.to_string())
}
