//! [`ManualClock`]: a clock that only moves when told to.

use std::sync::Mutex;

use crate::time::{Clock, Timestamp, truncate_millis};

/// A [`Clock`] for tests: starts at a fixed instant and moves only with [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(truncate_millis(start)),
        }
    }

    /// A clock at 2026-01-01T00:00:00Z.
    pub fn at_epoch() -> Self {
        Self::new(chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = truncate_millis(to);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::at_epoch()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
