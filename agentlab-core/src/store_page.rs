//! Pages and counts of the [`crate::StateStore`]: the cursor of the newest-first job listing,
//! a page of jobs, and the per-state record counts behind `GET /v1/status`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::model::Job;
use crate::state::{JobState, SandboxState};
use crate::time::Timestamp;

/// Position in the newest-first job listing: the last job of a page. The next page holds the
/// jobs that sort after it (older, or as old and inserted earlier), so jobs inserted while a
/// client pages never shift, repeat or hide the remaining pages.
///
/// Its text form (`<created_at ms>.<seq>`) is what the control API hands out as `cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobCursor {
    /// Creation time of the last job of the page.
    pub created_at: Timestamp,
    /// The store's insertion sequence number of that job (the tie-break).
    pub seq: i64,
}

/// A cursor text that is not `<created_at ms>.<seq>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid cursor {0:?}: expected the value of a previous page's next cursor")]
pub struct CursorError(pub String);

impl fmt::Display for JobCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at.timestamp_millis(), self.seq)
    }
}

impl FromStr for JobCursor {
    type Err = CursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CursorError(s.chars().take(64).collect());
        let (ms, seq) = s.split_once('.').ok_or_else(bad)?;
        let ms: i64 = ms.parse().map_err(|_| bad())?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        let created_at = chrono::DateTime::from_timestamp_millis(ms).ok_or_else(bad)?;
        Ok(Self { created_at, seq })
    }
}

/// One page of [`crate::StateStore::list_jobs_page`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPage {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Where the next page starts; `None` when this page is the last one.
    pub next: Option<JobCursor>,
}

/// Number of records per state; states without records are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Sandboxes per state (DESTROYED included).
    pub sandboxes: BTreeMap<SandboxState, u64>,
    /// Jobs per state.
    pub jobs: BTreeMap<JobState, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trips_and_rejects_garbage() {
        let c = JobCursor {
            created_at: chrono::DateTime::from_timestamp_millis(1_767_225_600_123).expect("valid"),
            seq: 42,
        };
        assert_eq!(c.to_string(), "1767225600123.42");
        assert_eq!(c.to_string().parse::<JobCursor>(), Ok(c));
        for bad in [
            "",
            "12",
            "a.b",
            "1.",
            ".1",
            "1.2.3",
            "99999999999999999999.1",
        ] {
            assert!(bad.parse::<JobCursor>().is_err(), "{bad:?} must be refused");
        }
    }
}
