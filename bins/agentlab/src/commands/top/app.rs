//! The state of `agentlab top`: the rows of both tables, the selection, the detail pane, a
//! pending confirmation and the status line. Pure: it is changed by [`App::apply`] (keys),
//! [`App::set_lists`] and [`App::push_event`] (data) and [`App::tick`] (time), performs no I/O
//! and answers the [`Effect`]s the run loop has to carry out.

use std::collections::BTreeMap;

use agentlab_core::{Event, EventKind, Job, JobId, Sandbox, SandboxState, Timestamp, Vmid};

use super::keys::Action;
use crate::commands::logs::Target;

/// Events kept in memory (the oldest are dropped first).
const MAX_EVENTS: usize = 5000;

/// Which table has the focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// The sandboxes table.
    Sandboxes,
    /// The jobs table.
    Jobs,
}

/// I/O the run loop performs for an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Destroy this sandbox (the operator confirmed it).
    Destroy(Vmid),
    /// Renew this sandbox's lease by its own length.
    Renew(Vmid),
    /// Open an interactive shell in this sandbox.
    Shell(Vmid),
    /// Leave `agentlab top`.
    Quit,
}

/// Everything the screen shows.
#[derive(Debug, Clone)]
pub struct App {
    /// Where the daemon is (socket path or endpoint URL), for the title.
    pub target: String,
    /// Live sandboxes, by vmid.
    pub sandboxes: Vec<Sandbox>,
    /// The most recent jobs, newest first.
    pub jobs: Vec<Job>,
    /// The table with the focus.
    pub tab: Tab,
    /// Whether the detail pane is shown.
    pub detail: bool,
    /// The job whose agent output the detail pane follows (`f`).
    pub follow: Option<JobId>,
    /// A destroy waiting for y/n.
    pub confirm: Option<Vmid>,
    /// The last message for the status line (action results and errors).
    pub status: Option<String>,
    /// The time the relative lease times are computed against.
    pub now: Timestamp,
    sel_sandbox: (usize, Option<Vmid>),
    sel_job: (usize, Option<JobId>),
    events: BTreeMap<i64, Event>,
    dirty: bool,
}

impl App {
    /// An empty screen for the daemon at `target`.
    pub fn new(target: String, now: Timestamp) -> Self {
        Self {
            target,
            sandboxes: Vec::new(),
            jobs: Vec::new(),
            tab: Tab::Sandboxes,
            detail: false,
            follow: None,
            confirm: None,
            status: None,
            now,
            sel_sandbox: (0, None),
            sel_job: (0, None),
            events: BTreeMap::new(),
            dirty: true,
        }
    }

    /// True (once) when something changed since the last call: the loop draws only then.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Forces a redraw (after a resize or a shell).
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// Replaces both tables, keeping the selected row where it still exists.
    pub fn set_lists(&mut self, sandboxes: Vec<Sandbox>, jobs: Vec<Job>) {
        if sandboxes == self.sandboxes && jobs == self.jobs {
            return;
        }
        self.sandboxes = sandboxes;
        self.jobs = jobs;
        let (i, key) = self.sel_sandbox;
        let i = key
            .and_then(|v| self.sandboxes.iter().position(|s| s.vmid == v))
            .unwrap_or(i);
        self.select_sandbox(i);
        let (i, key) = self.sel_job.clone();
        let i = key
            .and_then(|id| self.jobs.iter().position(|j| j.id == id))
            .unwrap_or(i);
        self.select_job(i);
        self.dirty = true;
    }

    /// Remembers an event; redraws when the detail pane shows its subject.
    pub fn push_event(&mut self, event: Event) {
        let shown = self.detail_target().is_some_and(|t| concerns(&t, &event));
        if self.events.insert(event.id, event).is_none() && shown {
            self.dirty = true;
        }
        while self.events.len() > MAX_EVENTS {
            self.events.pop_first();
        }
    }

    /// Sets the status line.
    pub fn set_status(&mut self, message: impl Into<String>) {
        self.status = Some(message.into());
        self.dirty = true;
    }

    /// Moves the clock (lease times are relative to it).
    pub fn tick(&mut self, now: Timestamp) {
        if now != self.now {
            self.now = now;
            self.dirty = true;
        }
    }

    /// Index of the selected row of the focused table.
    pub fn selected_index(&self) -> usize {
        match self.tab {
            Tab::Sandboxes => self.sel_sandbox.0,
            Tab::Jobs => self.sel_job.0,
        }
    }

    /// The selected sandbox (sandboxes table).
    pub fn selected_sandbox(&self) -> Option<&Sandbox> {
        self.sandboxes.get(self.sel_sandbox.0)
    }

    /// The selected job (jobs table).
    pub fn selected_job(&self) -> Option<&Job> {
        self.jobs.get(self.sel_job.0)
    }

    /// The sandbox that `x`, `r` and `s` act on: the selected one, or the selected job's.
    pub fn action_vmid(&self) -> Option<Vmid> {
        match self.tab {
            Tab::Sandboxes => self.selected_sandbox().map(|s| s.vmid),
            Tab::Jobs => self.selected_job().and_then(|j| j.sandbox),
        }
    }

    /// Whose events the detail pane shows: the followed job, else (pane open) the selection.
    pub fn detail_target(&self) -> Option<Target> {
        if let Some(job) = &self.follow {
            return Some(Target::Job(job.clone()));
        }
        if !self.detail {
            return None;
        }
        match self.tab {
            Tab::Sandboxes => self.selected_sandbox().map(|s| Target::Sandbox(s.vmid)),
            Tab::Jobs => self.selected_job().map(|j| Target::Job(j.id.clone())),
        }
    }

    /// The events of the detail pane's subject, oldest first (agent output only when following).
    pub fn detail_events(&self) -> Vec<&Event> {
        let Some(target) = self.detail_target() else {
            return Vec::new();
        };
        self.events
            .values()
            .filter(|e| concerns(&target, e))
            .filter(|e| self.follow.is_none() || e.kind == EventKind::JobLog)
            .collect()
    }

    /// Sandboxes whose event stream is worth following (not DESTROYED).
    pub fn live_vmids(&self) -> Vec<Vmid> {
        self.sandboxes
            .iter()
            .filter(|s| s.state != SandboxState::Destroyed)
            .map(|s| s.vmid)
            .collect()
    }

    /// Applies a key's action; the I/O it needs, if any.
    pub fn apply(&mut self, action: Action) -> Option<Effect> {
        self.dirty = true;
        if let Some(vmid) = self.confirm {
            return match action {
                Action::Yes => {
                    self.confirm = None;
                    self.status = Some(format!("destroying sandbox {vmid}…"));
                    Some(Effect::Destroy(vmid))
                }
                Action::No => {
                    self.confirm = None;
                    self.status = Some(format!("sandbox {vmid} kept"));
                    None
                }
                Action::Quit => Some(Effect::Quit),
                _ => None,
            };
        }
        match action {
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::SwitchTab => {
                self.tab = match self.tab {
                    Tab::Sandboxes => Tab::Jobs,
                    Tab::Jobs => Tab::Sandboxes,
                };
            }
            Action::ToggleDetail => {
                self.detail = !self.detail;
                if !self.detail {
                    self.follow = None;
                }
            }
            Action::Follow => self.toggle_follow(),
            Action::Destroy => match self.action_vmid() {
                Some(v) => self.confirm = Some(v),
                None => self.status = Some(self.no_sandbox()),
            },
            Action::Renew | Action::Shell => {
                let Some(v) = self.action_vmid() else {
                    self.status = Some(self.no_sandbox());
                    return None;
                };
                return Some(if action == Action::Renew {
                    Effect::Renew(v)
                } else {
                    Effect::Shell(v)
                });
            }
            Action::Quit => return Some(Effect::Quit),
            Action::Yes | Action::No => {}
        }
        None
    }

    fn no_sandbox(&self) -> String {
        match self.tab {
            Tab::Sandboxes => "no sandbox selected".to_owned(),
            Tab::Jobs => "the selected job has no sandbox".to_owned(),
        }
    }

    fn toggle_follow(&mut self) {
        if self.follow.take().is_some() {
            self.status = Some("stopped following".to_owned());
            return;
        }
        let job = match self.tab {
            Tab::Jobs => self.selected_job().map(|j| j.id.clone()),
            Tab::Sandboxes => self.selected_sandbox().and_then(|s| s.job.clone()),
        };
        match job {
            Some(id) => {
                self.status = Some(format!("following the agent output of {id}"));
                self.follow = Some(id);
                self.detail = true;
            }
            None => self.status = Some("no job to follow: select a job".to_owned()),
        }
    }

    fn step(&mut self, delta: isize) {
        let i = self.selected_index().saturating_add_signed(delta);
        match self.tab {
            Tab::Sandboxes => self.select_sandbox(i),
            Tab::Jobs => self.select_job(i),
        }
    }

    fn select_sandbox(&mut self, i: usize) {
        let i = i.min(self.sandboxes.len().saturating_sub(1));
        self.sel_sandbox = (i, self.sandboxes.get(i).map(|s| s.vmid));
    }

    fn select_job(&mut self, i: usize) {
        let i = i.min(self.jobs.len().saturating_sub(1));
        self.sel_job = (i, self.jobs.get(i).map(|j| j.id.clone()));
    }
}

/// True when `event` belongs to `target`'s events.
fn concerns(target: &Target, event: &Event) -> bool {
    match target {
        Target::Sandbox(v) => event.sandbox == Some(*v),
        Target::Job(id) => event.job.as_ref() == Some(id),
    }
}
