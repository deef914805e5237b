//! The canned agentlabd of `agentlab_client::testing`, plus a command context pointing at it.

pub use agentlab_client::testing::{Canned, Reply, fixtures};

use crate::ctx::Ctx;

/// A command context for a canned daemon.
pub trait CannedCtx {
    /// The context with `--json` set to `json`.
    fn ctx(&self, json: bool) -> Ctx;
}

impl CannedCtx for Canned {
    fn ctx(&self, json: bool) -> Ctx {
        Ctx {
            client: self.client(),
            json,
            timeout: None,
            token: None,
        }
    }
}
