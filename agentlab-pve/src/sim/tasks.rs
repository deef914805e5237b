//! Simulated worker tasks: real-format UPIDs, `running → stopped` with `exitstatus`, task logs
//! ending in `TASK OK` / `TASK ERROR: …`, and the "no such task" window right after creation.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use super::server::{ApiErr, SimInner};

/// One task.
#[derive(Debug, Clone)]
pub struct Task {
    /// Node.
    pub node: String,
    /// Type (`qmclone`, …).
    pub kind: String,
    /// Id (clone: the source vmid).
    pub id: String,
    /// Still running.
    pub running: bool,
    /// Exit status once stopped.
    pub exitstatus: Option<String>,
    /// Log lines.
    pub log: Vec<String>,
    /// Status polls answered so far.
    pub polls: u32,
    /// Start time (epoch seconds).
    pub starttime: u64,
    /// When it was started, when it ended and when a status poll first answered `stopped`.
    pub timing: TaskTiming,
}

/// When a task ran and when its end was first reported ([`crate::sim::Simulator::task_timings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTiming {
    /// The task's UPID.
    pub upid: String,
    /// Type (`qmclone`, `qmstart`, …).
    pub kind: String,
    /// When the task was created.
    pub started: Instant,
    /// When it ended (`None` while running).
    pub ended: Option<Instant>,
    /// When `GET …/tasks/{upid}/status` first answered `stopped` (`None` until then).
    pub seen_stopped: Option<Instant>,
}

/// All tasks by UPID.
#[derive(Debug, Default)]
pub struct Tasks {
    map: HashMap<String, Task>,
    /// Handles to kill running tasks (`DELETE /nodes/{node}/tasks/{upid}`).
    aborts: HashMap<String, tokio::task::AbortHandle>,
}

static PID: AtomicU32 = AtomicU32::new(0x1000);

impl SimInner {
    /// Starts a task: after the configured duration it runs `work` (or fails with `fault`).
    pub fn spawn_task<F>(
        self: &Arc<Self>,
        node: &str,
        kind: &str,
        id: &str,
        fault: Option<String>,
        work: F,
    ) -> String
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let pid = PID.fetch_add(1, Ordering::Relaxed);
        let starttime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let user = &self.config.token_id;
        let upid = format!(
            "UPID:{node}:{pid:08X}:{:08X}:{starttime:08X}:{kind}:{id}:{user}:",
            pid * 7
        );
        let task = Task {
            node: node.to_owned(),
            kind: kind.to_owned(),
            id: id.to_owned(),
            running: true,
            exitstatus: None,
            log: vec![format!("starting task {kind} {id}")],
            polls: 0,
            starttime,
            timing: TaskTiming {
                upid: upid.clone(),
                kind: kind.to_owned(),
                started: Instant::now(),
                ended: None,
                seen_stopped: None,
            },
        };
        self.tasks().map.insert(upid.clone(), task);
        let sim = Arc::clone(self);
        let key = upid.clone();
        let duration = self.config.task_duration;
        let mut tasks = self.tasks();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            let result = match fault {
                Some(msg) => Err(msg),
                None => work.await,
            };
            let mut tasks = sim.tasks();
            if let Some(t) = tasks.map.get_mut(&key) {
                t.running = false;
                t.timing.ended = Some(Instant::now());
                match result {
                    Ok(()) => {
                        t.log.push("TASK OK".into());
                        t.exitstatus = Some("OK".into());
                    }
                    Err(msg) => {
                        t.log.push(msg.clone());
                        t.log.push(format!("TASK ERROR: {msg}"));
                        t.exitstatus = Some(msg);
                    }
                }
            }
            tasks.aborts.remove(&key);
        });
        tasks.aborts.insert(upid.clone(), handle.abort_handle());
        drop(tasks);
        upid
    }

    /// `DELETE /nodes/{node}/tasks/{upid}`: kills a running task as PVE's SIGTERM does (the
    /// work is abandoned; a clone removes its half-made VM) and ends it with `interrupted by
    /// signal` (`clone failed: interrupted by signal` for clones). A stopped task: no-op.
    pub fn stop_task(&self, node: &str, upid: &str) -> Result<Value, ApiErr> {
        let mut tasks = self.tasks();
        let abort = tasks.aborts.remove(upid);
        let Some(t) = tasks.map.get_mut(upid).filter(|t| t.node == node) else {
            return Err(ApiErr::param("upid", "no such task"));
        };
        if t.running {
            if let Some(a) = &abort {
                a.abort();
            }
            let msg = if t.kind == "qmclone" {
                "clone failed: interrupted by signal"
            } else {
                "interrupted by signal"
            };
            t.running = false;
            t.timing.ended = Some(Instant::now());
            t.log.push("received interrupt".into());
            t.log.push(format!("TASK ERROR: {msg}"));
            t.exitstatus = Some(msg.to_owned());
        }
        Ok(Value::Null)
    }

    /// UPIDs of the tasks still running, sorted.
    pub fn running_tasks(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .tasks()
            .map
            .iter()
            .filter(|(_, t)| t.running)
            .map(|(u, _)| u.clone())
            .collect();
        v.sort();
        v
    }

    /// `GET /nodes/{node}/tasks`: the node's tasks, newest first, filtered by `source`
    /// (`active`: running only; default `archive`: ended only; `all`), `typefilter` and
    /// `vmid` (the task id).
    pub fn task_list(
        &self,
        node: &str,
        source: Option<&str>,
        typefilter: Option<&str>,
        vmid: Option<&str>,
    ) -> Value {
        let tasks = self.tasks();
        let mut list: Vec<(&String, &Task)> = tasks
            .map
            .iter()
            .filter(|(_, t)| t.node == node)
            .filter(|(_, t)| match source.unwrap_or("archive") {
                "active" => t.running,
                "all" => true,
                _ => !t.running,
            })
            .filter(|(_, t)| typefilter.is_none_or(|f| t.kind == f))
            .filter(|(_, t)| vmid.is_none_or(|v| t.id == v))
            .collect();
        list.sort_by(|a, b| b.1.starttime.cmp(&a.1.starttime).then(b.0.cmp(a.0)));
        Value::Array(
            list.into_iter()
                .map(|(upid, t)| {
                    let mut v = json!({
                        "upid": upid, "node": t.node, "type": t.kind, "id": t.id,
                        "user": self.config.token_id, "pid": 0, "pstart": 0, "starttime": t.starttime,
                    });
                    if let Some(e) = &t.exitstatus {
                        v["status"] = json!(e);
                        v["endtime"] = json!(t.starttime);
                    }
                    v
                })
                .collect(),
        )
    }

    /// `GET /nodes/{node}/tasks/{upid}/status`.
    pub fn task_status(&self, node: &str, upid: &str) -> Result<Value, ApiErr> {
        let hidden = self.config.hidden_task_polls;
        let mut tasks = self.tasks();
        let Some(t) = tasks.map.get_mut(upid).filter(|t| t.node == node) else {
            return Err(ApiErr::param("upid", "no such task"));
        };
        t.polls += 1;
        if t.polls <= hidden {
            return Err(ApiErr::param("upid", "no such task"));
        }
        if !t.running && t.timing.seen_stopped.is_none() {
            t.timing.seen_stopped = Some(Instant::now());
        }
        let mut v = json!({
            "upid": upid, "node": t.node, "type": t.kind, "id": t.id, "user": self.config.token_id,
            "pid": 0, "pstart": 0, "starttime": t.starttime,
            "status": if t.running { "running" } else { "stopped" },
        });
        if let Some(e) = &t.exitstatus {
            v["exitstatus"] = json!(e);
        }
        Ok(v)
    }

    /// `GET /nodes/{node}/tasks/{upid}/log`.
    pub fn task_log(
        &self,
        node: &str,
        upid: &str,
        start: usize,
        limit: usize,
    ) -> Result<(Value, usize), ApiErr> {
        let tasks = self.tasks();
        let Some(t) = tasks.map.get(upid).filter(|t| t.node == node) else {
            return Err(ApiErr::param("upid", "no such task"));
        };
        let lines: Vec<Value> = t
            .log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect();
        Ok((Value::Array(lines), t.log.len()))
    }

    /// Start, end and first reported end of every task, in start order.
    pub fn task_timings(&self) -> Vec<TaskTiming> {
        let mut v: Vec<TaskTiming> = self
            .tasks()
            .map
            .values()
            .map(|t| t.timing.clone())
            .collect();
        v.sort_by_key(|t| t.started);
        v
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
