//! Profiles: named recipes for sandboxes (template, resources, network policy, lifetime,
//! agent), loaded strictly from YAML.
//!
//! Every key of the schema is either honoured by the engine or rejected with a message saying
//! it is not supported yet (today: `network.firewall_group`, except the Go original's three
//! groups); unknown keys are errors with a "did you mean" suggestion. Go-original spellings
//! with the same meaning are translated with a [`ProfileWarning`]. [`Profiles::load_dir`] reads every `*.yaml`/`*.yml` file of a
//! directory, each possibly holding several `---` documents, and refuses duplicate names.
//! See `docs/configuration.md` for the reference.

mod legacy;
mod load;
mod result;
#[cfg(test)]
mod result_tests;
mod schema;
mod validate;

pub use legacy::ProfileWarning;
pub use load::{ProfileError, Profiles};
pub use result::{
    DEFAULT_BRANCH_TEMPLATE, Forge, PrProfile, ResultContext, ResultOverride, ResultProfile,
    check_branch_name, render_template, repo_coordinates, resolve as resolve_result,
};
pub use schema::{
    AgentMode, AgentPreset, AgentProfile, ArtifactsProfile, BehaviorProfile, InnerSandbox,
    NetworkMode, NetworkProfile, Profile, RepoProfile, ResourcesProfile, StorageProfile,
    WorkspaceMode,
};
pub use validate::{AllowlistEntry, parse_allowlist_entry};
