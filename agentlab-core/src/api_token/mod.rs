//! API tokens of the remote control API: scopes, records, issuing and checking, storage.
//!
//! The daemon issues tokens (`agentlab token create`) and stores only their hashes; a remote
//! request presents one as `Authorization: Bearer alab_<id>_<secret>`, and the route's
//! [`Required`] scope must be covered by one of the token's [`Scope`]s.

mod record;
mod scope;
mod store;

pub use record::{
    ApiToken, CreatedApiToken, IssueError, NewApiToken, TOKEN_PREFIX, TokenRefusal, parse_ttl,
    split_token,
};
pub use scope::{Required, SCOPES, Scope, ScopeError};
pub use store::ApiTokenStore;
