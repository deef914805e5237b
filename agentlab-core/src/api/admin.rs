//! Operator wire types: the answer of a profile and config reload
//! (`POST /v1/profiles/reload`).

use serde::{Deserialize, Serialize};

/// What a profile reload changed, by profile name (each list sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileChanges {
    /// Names new in the reloaded set.
    pub added: Vec<String>,
    /// Names no longer in the set (sandboxes created with them keep them).
    pub removed: Vec<String>,
    /// Names whose definition differs.
    pub changed: Vec<String>,
    /// How many profiles are identical.
    pub unchanged: usize,
}

/// `POST /v1/profiles/reload` answer: the profile changes applied, and the config keys that
/// changed on disk but take effect only after a restart (not applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The config file that was read.
    pub config: String,
    /// Profile changes, applied.
    pub profiles: ProfileChanges,
    /// Top-level config keys whose value on disk differs from the running one and that need a
    /// restart (sorted; values are never shown).
    pub restart_required: Vec<String>,
}
