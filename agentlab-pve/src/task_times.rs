//! Learned task durations: an exponentially weighted mean per task type (the UPID's type
//! field, e.g. `qmclone`, `qmstart`), so [`crate::client::Api::wait_task`] can poll sparsely
//! while a task surely runs and densely around its expected end.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Mean durations by task type.
#[derive(Debug, Default)]
pub struct TaskTimes {
    means: Mutex<HashMap<String, Duration>>,
}

impl TaskTimes {
    /// The expected duration of a task of `kind`, once one was seen.
    pub fn expected(&self, kind: &str) -> Option<Duration> {
        self.means
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kind)
            .copied()
    }

    /// Records that a task of `kind` took `took` (weight 1/4 for the new sample).
    pub fn record(&self, kind: &str, took: Duration) {
        let mut means = self.means.lock().unwrap_or_else(PoisonError::into_inner);
        let mean = means.entry(kind.to_owned()).or_insert(took);
        *mean = (*mean * 3 + took) / 4;
    }
}

/// The task type of a UPID (`UPID:node:pid:pstart:starttime:TYPE:id:user:`).
pub fn upid_kind(upid: &str) -> Option<&str> {
    upid.split(':').nth(5).filter(|k| !k.is_empty())
}

/// How long a task of a type not seen yet is polled at most every [`UNKNOWN_CAP`]: long
/// enough for the clones and starts AgentLab runs, so the first of each type is seen within
/// about 50 ms too.
pub const UNKNOWN_WINDOW: Duration = Duration::from_secs(10);
/// Longest interval while a task of an unknown type is younger than [`UNKNOWN_WINDOW`].
pub const UNKNOWN_CAP: Duration = Duration::from_millis(50);

/// When to poll a task next: `elapsed` since it was started, `previous` the last interval.
/// Without an expectation the interval grows by half from `first` up to [`UNKNOWN_CAP`]
/// during the task's first [`UNKNOWN_WINDOW`], then up to `max`; with one, the
/// first poll comes at 80% of it and then every `fine` until twice the expectation, after
/// which the interval grows again.
pub fn next_poll(
    elapsed: Duration,
    previous: Option<Duration>,
    expected: Option<Duration>,
    first: Duration,
    fine: Duration,
    max: Duration,
) -> Duration {
    let grow = |p: Option<Duration>| {
        p.map_or(first, |p| (p + p / 2).min(max))
            .max(fine.min(first))
    };
    match expected {
        Some(exp) if elapsed < exp * 4 / 5 => (exp * 4 / 5 - elapsed).max(fine.min(first)),
        Some(exp) if elapsed < exp * 2 => fine,
        Some(_) => grow(previous.map(|p| p.max(fine))),
        None if elapsed < UNKNOWN_WINDOW => grow(previous).min(UNKNOWN_CAP.max(first)),
        None => grow(previous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn kinds_and_means() {
        let upid = "UPID:pve1:00000ACD:00006AE8:679A423B:qmclone:112:agentlab@pve!x:";
        assert_eq!(upid_kind(upid), Some("qmclone"));
        assert_eq!(upid_kind("UPID:pve1"), None);
        let t = TaskTimes::default();
        assert_eq!(t.expected("qmclone"), None);
        t.record("qmclone", 400 * MS);
        assert_eq!(t.expected("qmclone"), Some(400 * MS));
        t.record("qmclone", 800 * MS);
        assert_eq!(t.expected("qmclone"), Some(500 * MS));
    }

    #[test]
    fn an_unknown_type_is_polled_at_most_every_50_ms_for_its_first_10_s() {
        let (first, fine, max) = (50 * MS, 25 * MS, 1000 * MS);
        let mut t = Duration::ZERO;
        let mut prev = None;
        while t < UNKNOWN_WINDOW {
            let i = next_poll(t, prev, None, first, fine, max);
            assert!(i <= UNKNOWN_CAP, "{i:?} at {t:?}");
            t += i;
            prev = Some(i);
        }
        // Later it grows to the maximum again.
        for _ in 0..20 {
            let i = next_poll(t, prev, None, first, fine, max);
            t += i;
            prev = Some(i);
        }
        assert_eq!(prev, Some(max));
    }

    #[test]
    fn polls_are_sparse_before_and_dense_around_the_expected_end() {
        let (first, fine, max) = (50 * MS, 50 * MS, 1000 * MS);
        // Unknown kind: every 50 ms for 10 s, then growing by half up to 1 s.
        assert_eq!(
            next_poll(Duration::ZERO, None, None, first, fine, max),
            50 * MS
        );
        assert_eq!(
            next_poll(50 * MS, Some(50 * MS), None, first, fine, max),
            UNKNOWN_CAP
        );
        assert_eq!(
            next_poll(10_050 * MS, Some(50 * MS), None, first, fine, max),
            75 * MS
        );
        assert_eq!(
            next_poll(19000 * MS, Some(900 * MS), None, first, fine, max),
            max
        );
        // Expected 2 s: sleep straight to 1.6 s, then every 50 ms until 4 s.
        let exp = Some(2000 * MS);
        assert_eq!(
            next_poll(Duration::ZERO, None, exp, first, fine, max),
            1600 * MS
        );
        assert_eq!(
            next_poll(1600 * MS, Some(1600 * MS), exp, first, fine, max),
            fine
        );
        assert_eq!(
            next_poll(3900 * MS, Some(fine), exp, first, fine, max),
            fine
        );
        // Late: back off again.
        assert_eq!(
            next_poll(4100 * MS, Some(fine), exp, first, fine, max),
            75 * MS
        );
    }
}
