//! Waiting for PVE worker tasks: parse the node out of the UPID, poll
//! `/nodes/{node}/tasks/{upid}/status` (sparsely while the task surely runs, every
//! `task_fine_interval_ms` around the end expected from earlier tasks of its type, see
//! `task_times`, which learns from the middle of the last poll interval, where the task
//! ended; treating an early 400 "no such task" as "not visible yet"), and turn a failed
//! `exitstatus` into [`PveError::Task`] with the log tail.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{Api, Counter, Params, seg};
use crate::error::PveError;
use crate::options::PollOptions;
use crate::task_times::{next_poll, upid_kind};

/// The node a UPID belongs to (`UPID:<node>:…`).
pub fn upid_node(upid: &str) -> Option<&str> {
    let mut parts = upid.split(':');
    (parts.next() == Some("UPID"))
        .then(|| parts.next())
        .flatten()
        .filter(|n| !n.is_empty())
}

/// Whether an exit status means success (`OK` or `WARNINGS: N`).
pub fn exit_ok(exitstatus: &str) -> bool {
    exitstatus == "OK"
        || exitstatus
            .strip_prefix("WARNINGS: ")
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
}

impl Api {
    /// Waits for the task `upid` started by `call` (a `null` answer means done synchronously).
    pub async fn wait_task(
        &self,
        call: &str,
        upid: &Value,
        poll: &PollOptions,
    ) -> Result<(), PveError> {
        let Some(upid) = upid.as_str() else {
            return Ok(());
        };
        let node = upid_node(upid).ok_or_else(|| PveError::Decode {
            call: call.to_owned(),
            detail: format!("not a UPID: {upid}"),
        })?;
        let path = format!("/nodes/{node}/tasks/{}", seg(upid));
        let started = Instant::now();
        let deadline = started + Duration::from_millis(poll.task_timeout_ms);
        let kind = upid_kind(upid).unwrap_or("task");
        let expected = self.task_times.expected(kind);
        let ms = |v: u64| Duration::from_millis(v.max(1));
        let mut previous = None;
        // When a status answer last said the task still ran: it ended between that and the
        // answer that says it stopped.
        let mut seen_running = Duration::ZERO;
        loop {
            let interval = next_poll(
                started.elapsed(),
                previous,
                expected,
                ms(poll.task_interval_ms),
                ms(poll.task_fine_interval_ms),
                ms(poll.task_max_interval_ms),
            );
            previous = Some(interval);
            tokio::time::sleep(interval).await;
            match self.get(&format!("{path}/status"), &Params::new()).await {
                Ok(status) => {
                    if status.get("status").and_then(Value::as_str) == Some("stopped") {
                        // The middle of the window the end lies in, not the time it was
                        // seen: a coarse poll would otherwise teach a late expectation.
                        let seen = started.elapsed();
                        self.task_times
                            .record(kind, seen_running + (seen - seen_running) / 2);
                        let exit = status
                            .get("exitstatus")
                            .and_then(Value::as_str)
                            .unwrap_or("unexpected status")
                            .to_owned();
                        if exit_ok(&exit) {
                            return Ok(());
                        }
                        let log_tail = self.log_tail(&path).await;
                        return Err(PveError::Task {
                            call: call.to_owned(),
                            upid: upid.to_owned(),
                            exitstatus: exit,
                            log_tail,
                        });
                    }
                    seen_running = started.elapsed();
                }
                Err(PveError::Api {
                    status: 400,
                    message,
                    ..
                }) if message.contains("no such task") => {
                    self.counters.bump(Counter::TransientTaskPoll);
                }
                Err(e) => return Err(e),
            }
            if Instant::now() > deadline {
                return Err(PveError::Timeout {
                    call: call.to_owned(),
                    what: format!("task {upid}"),
                });
            }
        }
    }

    async fn log_tail(&self, path: &str) -> Vec<String> {
        let Ok(lines) = self
            .get(&format!("{path}/log"), &vec![("limit", "500".to_owned())])
            .await
        else {
            return Vec::new();
        };
        let all: Vec<String> = lines
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("t").and_then(Value::as_str).map(str::to_owned))
            .collect();
        all[all.len().saturating_sub(5)..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_node_and_exit_status() {
        let upid = "UPID:pve-mp:00000ACD:00006AE8:679A423B:qmclone:112:capmox@pve!capi:";
        assert_eq!(upid_node(upid), Some("pve-mp"));
        assert_eq!(upid_node("nonsense"), None);
        assert_eq!(upid_node("UPID::x"), None);
        assert!(exit_ok("OK"));
        assert!(exit_ok("WARNINGS: 3"));
        assert!(!exit_ok("WARNINGS: x"));
        assert!(!exit_ok("clone failed: got timeout"));
        assert!(!exit_ok("unexpected status"));
    }
}
