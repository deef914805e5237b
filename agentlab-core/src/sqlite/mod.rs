//! [`SqliteStore`]: the [`crate::StateStore`] backed by one SQLite file (feature `sqlite`, on by
//! default; rusqlite with a bundled SQLite).
//!
//! Design:
//! - One connection per store, behind a `std::sync::Mutex`, used only inside
//!   `tokio::task::spawn_blocking`; the lock is never held across an `.await`.
//! - The file is opened in WAL mode with foreign keys on and a busy timeout, so several
//!   processes (or several stores on one file) serialise their writes instead of failing.
//! - The schema is versioned with `PRAGMA user_version` and migrated forward on open
//!   ([`SqliteStore::SCHEMA_VERSION`]); a file from a newer AgentLab is refused.
//! - Compare-and-set writes are single `UPDATE … WHERE state = ?` statements inside a
//!   transaction; when nothing changed the row is read again to tell `NotFound` from `Conflict`.
//! - Timestamps are stored as integer milliseconds since the epoch; payloads and job outcomes
//!   as JSON text.
//! - rusqlite types never leave this module: errors are mapped to
//!   [`crate::StateStoreError`] (`SQLITE_BUSY`/`LOCKED`, cannot open, read-only and disk full
//!   become `Unavailable`; unique-key violations become `AlreadyExists`; the rest `Backend`).
//!
//! See `docs/state-store.md` for the schema.

mod api_tokens;
mod artifacts;
mod cas;
mod codec;
mod conn;
mod counts;
mod error;
mod events;
mod jobs;
mod migrations;
mod prune;
mod sandboxes;
mod store_impl;
mod tokens;
mod workspaces;

pub use conn::SqliteStore;
