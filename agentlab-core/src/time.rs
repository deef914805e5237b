//! Time: the [`Timestamp`] type and the injected [`Clock`].
//!
//! Lease, deadline and token-expiry logic read the time only through a `Clock`, so tests drive
//! it with `crate::fake::ManualClock` (feature `fake`) instead of sleeping.

use std::fmt::Debug;

/// A UTC instant with millisecond precision as stored and sent on the wire.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        truncate_millis(chrono::Utc::now())
    }
}

/// Drops sub-millisecond precision so that values survive a store round trip unchanged.
pub fn truncate_millis(t: Timestamp) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
