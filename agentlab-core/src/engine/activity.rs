//! What idle stop measures: a sandbox's last activity. Activity is an open exec, shell, copy
//! or forward stream (the whole time it is open), a stream opening or closing, a job's log
//! output, and guest CPU use above the profile's `behavior.idle_cpu_percent` between two
//! ticks (read through the backend's [`ProcessUsage`](crate::hypervisor::ProcessUsage) when it
//! has one). State changes count too: a sandbox is never idle for longer than it has been in
//! its state.
//!
//! The record lives in memory. After a daemon restart every sandbox's idle time counts from
//! the start of the new process, never from before it, so a restart cannot stop a sandbox
//! that was busy a moment ago.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::ids::Vmid;
use crate::time::Timestamp;

/// Per sandbox: when it was last seen active, its open streams and its last CPU sample.
#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    last: Option<Timestamp>,
    open_streams: u32,
    cpu: Option<(Timestamp, f64)>,
}

/// The engine's activity record (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct Activity {
    since_start: Timestamp,
    entries: Mutex<HashMap<Vmid, Entry>>,
}

/// Why a sandbox is not idle, or since when it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Idleness {
    /// A stream is open or the guest used the CPU since the last sample.
    Busy,
    /// Idle since this time.
    Since(Timestamp),
}

impl Activity {
    /// A record for a process that started at `started`.
    pub(crate) fn new(started: Timestamp) -> Self {
        Self {
            since_start: started,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, vmid: Vmid, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(vmid).or_default())
    }

    /// The sandbox did something at `now` (log output, a stream event).
    pub(crate) fn touch(&self, vmid: Vmid, now: Timestamp) {
        self.with(vmid, |e| e.last = Some(e.last.map_or(now, |l| l.max(now))));
    }

    /// A stream into the sandbox opened at `now`.
    pub(crate) fn stream_opened(&self, vmid: Vmid, now: Timestamp) {
        self.with(vmid, |e| {
            e.open_streams += 1;
            e.last = Some(e.last.map_or(now, |l| l.max(now)));
        });
    }

    /// A stream into the sandbox closed at `now`.
    pub(crate) fn stream_closed(&self, vmid: Vmid, now: Timestamp) {
        self.with(vmid, |e| {
            e.open_streams = e.open_streams.saturating_sub(1);
            e.last = Some(e.last.map_or(now, |l| l.max(now)));
        });
    }

    /// The sandbox is gone: forget it.
    pub(crate) fn forget(&self, vmid: Vmid) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&vmid);
    }

    /// Decides at `now` whether the sandbox is idle. `changed` is when it entered its state;
    /// `cpu_seconds` the guest's CPU time so far when the backend reports it; `cpu_percent`
    /// the share of one CPU above which the guest counts as busy.
    pub(crate) fn idleness(
        &self,
        vmid: Vmid,
        now: Timestamp,
        changed: Timestamp,
        cpu_seconds: Option<f64>,
        cpu_percent: u32,
    ) -> Idleness {
        let since_start = self.since_start;
        self.with(vmid, |e| {
            if e.open_streams > 0 {
                e.last = Some(now);
                return Idleness::Busy;
            }
            if let Some(cpu) = cpu_seconds {
                let previous = e.cpu.replace((now, cpu));
                if let Some((at, before)) = previous {
                    let wall = (now - at).to_std().unwrap_or_default().as_secs_f64();
                    let used = cpu - before;
                    // A counter that went back (a restarted VM process) is a new start.
                    if wall > 0.0 && used > wall * f64::from(cpu_percent) / 100.0 {
                        e.last = Some(now);
                        return Idleness::Busy;
                    }
                }
            }
            let mut since = changed.max(since_start);
            if let Some(last) = e.last {
                since = since.max(last);
            }
            Idleness::Since(since)
        })
    }

    /// When the sandbox was last seen active by this process, if ever.
    pub(crate) fn last_active(&self, vmid: Vmid) -> Option<Timestamp> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&vmid)
            .and_then(|e| e.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn v() -> Vmid {
        Vmid::new(9100).unwrap()
    }

    #[test]
    fn idle_counts_from_the_latest_of_start_state_change_and_activity() {
        let a = Activity::new(t(100));
        assert_eq!(
            a.idleness(v(), t(200), t(0), None, 5),
            Idleness::Since(t(100))
        );
        assert_eq!(
            a.idleness(v(), t(200), t(150), None, 5),
            Idleness::Since(t(150))
        );
        a.touch(v(), t(180));
        assert_eq!(
            a.idleness(v(), t(200), t(150), None, 5),
            Idleness::Since(t(180))
        );
        // An older touch never moves the time back.
        a.touch(v(), t(170));
        assert_eq!(a.last_active(v()), Some(t(180)));
    }

    #[test]
    fn an_open_stream_keeps_the_sandbox_busy_until_it_closes() {
        let a = Activity::new(t(0));
        a.stream_opened(v(), t(10));
        assert_eq!(a.idleness(v(), t(5000), t(0), None, 5), Idleness::Busy);
        a.stream_closed(v(), t(6000));
        assert_eq!(
            a.idleness(v(), t(7000), t(0), None, 5),
            Idleness::Since(t(6000))
        );
        // More closes than opens never underflow into "open".
        a.stream_closed(v(), t(7000));
        assert_eq!(
            a.idleness(v(), t(8000), t(0), None, 5),
            Idleness::Since(t(7000))
        );
    }

    #[test]
    fn cpu_above_the_threshold_between_samples_is_activity() {
        let a = Activity::new(t(0));
        // First sample: nothing to compare with.
        assert_eq!(
            a.idleness(v(), t(100), t(0), Some(10.0), 5),
            Idleness::Since(t(0))
        );
        // 60 s wall, 1 s CPU: 1.7 % of a CPU, below 5 %.
        assert_eq!(
            a.idleness(v(), t(160), t(0), Some(11.0), 5),
            Idleness::Since(t(0))
        );
        // 60 s wall, 6 s CPU: 10 %.
        assert_eq!(a.idleness(v(), t(220), t(0), Some(17.0), 5), Idleness::Busy);
        assert_eq!(
            a.idleness(v(), t(280), t(0), Some(17.0), 5),
            Idleness::Since(t(220))
        );
        // A counter that restarted from zero is not activity.
        assert_eq!(
            a.idleness(v(), t(340), t(0), Some(0.5), 5),
            Idleness::Since(t(220))
        );
        a.forget(v());
        assert_eq!(a.last_active(v()), None);
    }
}
