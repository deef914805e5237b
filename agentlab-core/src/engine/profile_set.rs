//! The engine's profile set and its atomic replacement ([`Lab::replace_profiles`]).
//!
//! The set is an `Arc<Profiles>` behind a lock held only to clone or swap the pointer, so
//! readers never see a half-replaced set. Each sandbox this process creates is pinned to the
//! profile it was created with until it is DESTROYED: a reload that changes or removes that
//! profile does not change what the sandbox's later steps (provisioning, bootstrap, firewall
//! re-apply, idle stop) read. Pins live in memory: after a daemon restart a sandbox reads its
//! profile by name from the set loaded at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::api::admin::ProfileChanges;
use crate::engine::error::EngineError;
use crate::ids::Vmid;
use crate::profile::{Profile, Profiles};

use super::lab::Lab;

/// The current set plus the pins of live sandboxes.
#[derive(Debug)]
pub(crate) struct ProfileSet {
    current: RwLock<Arc<Profiles>>,
    pinned: Mutex<HashMap<Vmid, Arc<Profile>>>,
}

impl ProfileSet {
    pub(crate) fn new(profiles: Profiles) -> Self {
        Self {
            current: RwLock::new(Arc::new(profiles)),
            pinned: Mutex::new(HashMap::new()),
        }
    }

    fn current(&self) -> Arc<Profiles> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn pins(&self) -> std::sync::MutexGuard<'_, HashMap<Vmid, Arc<Profile>>> {
        self.pinned.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What differs between two sets, by name (each list sorted).
pub fn diff_profiles(old: &Profiles, new: &Profiles) -> ProfileChanges {
    let mut changes = ProfileChanges::default();
    for p in new.iter() {
        match old.get(&p.name) {
            None => changes.added.push(p.name.clone()),
            Some(before) if before != p => changes.changed.push(p.name.clone()),
            Some(_) => changes.unchanged += 1,
        }
    }
    changes.removed = old
        .names()
        .into_iter()
        .filter(|n| new.get(n).is_none())
        .map(str::to_owned)
        .collect();
    changes
}

impl Lab {
    /// The current profile set (a snapshot: a later reload does not change it).
    pub fn profiles(&self) -> Arc<Profiles> {
        self.profile_set.current()
    }

    /// Replaces the profile set in one step and returns what changed. Requests that already
    /// read the old set finish with it; sandboxes created before keep their profile (see the
    /// module docs). The caller validated `profiles` (loading a [`Profiles`] does).
    pub fn replace_profiles(&self, profiles: Profiles) -> ProfileChanges {
        let new = Arc::new(profiles);
        let old = {
            let mut cur = self
                .profile_set
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *cur, Arc::clone(&new))
        };
        let changes = diff_profiles(&old, &new);
        tracing::debug!(
            added = ?changes.added,
            removed = ?changes.removed,
            changed = ?changes.changed,
            unchanged = changes.unchanged,
            "profiles replaced"
        );
        changes
    }

    /// The profile sandbox `vmid` uses: the one it was created with by this process, else the
    /// current profile called `name` (its record's `profile`).
    pub fn sandbox_profile(&self, vmid: Vmid, name: &str) -> Option<Arc<Profile>> {
        if let Some(p) = self.profile_set.pins().get(&vmid) {
            return Some(Arc::clone(p));
        }
        self.profiles().get(name).cloned().map(Arc::new)
    }

    /// The profile a job runs with: its sandbox's ([`Lab::sandbox_profile`]), else the current
    /// profile named in the job.
    pub fn job_profile(&self, job: &crate::model::Job) -> Option<Arc<Profile>> {
        match job.sandbox {
            Some(vmid) => self.sandbox_profile(vmid, &job.profile),
            None => self.profiles().get(&job.profile).cloned().map(Arc::new),
        }
    }

    /// The current profile called `name`, or `NotFound` with a "did you mean".
    pub(crate) fn profile(&self, name: &str) -> Result<Arc<Profile>, EngineError> {
        let set = self.profiles();
        set.get(name)
            .cloned()
            .map(Arc::new)
            .ok_or_else(|| EngineError::NotFound {
                kind: "profile",
                id: name.to_owned(),
                suggestion: crate::yaml::suggest(name, &set.names()),
            })
    }

    /// [`Lab::sandbox_profile`] or `NotFound`.
    pub(crate) fn profile_of(&self, vmid: Vmid, name: &str) -> Result<Arc<Profile>, EngineError> {
        match self.profile_set.pins().get(&vmid) {
            Some(p) => Ok(Arc::clone(p)),
            None => self.profile(name),
        }
    }

    /// Pins `vmid` to `profile` (a new sandbox, or one that moved to a new vmid).
    pub(crate) fn pin_profile(&self, vmid: Vmid, profile: Arc<Profile>) {
        self.profile_set.pins().insert(vmid, profile);
    }

    /// The pin of `vmid`, if any, moved to `to`.
    pub(crate) fn move_pin(&self, from: Vmid, to: Vmid) {
        let mut pins = self.profile_set.pins();
        if let Some(p) = pins.remove(&from) {
            pins.insert(to, p);
        }
    }

    /// Drops the pin of a DESTROYED sandbox.
    pub(crate) fn unpin_profile(&self, vmid: Vmid) {
        self.profile_set.pins().remove(&vmid);
    }
}
