//! [`MetricsError`]: what can go wrong while rendering a scrape.

use agentlab_core::StateStoreError;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A gauge computed at scrape time could not read the state store.
    #[error("Reading {what} from the state store")]
    Store {
        /// Which read failed (`sandboxes`, `counts`, `event count`).
        what: &'static str,
        /// The store's error.
        #[source]
        source: StateStoreError,
    },
    /// The registry could not be written out in the text format.
    #[error("Encoding the metrics")]
    Encode(#[source] std::fmt::Error),
}
