//! Conformance suites every backend implementation must pass (feature `fake`).
//!
//! Each suite is an async function taking a fresh implementation; it panics with a clear
//! message on the first violation. Backend crates call them from their own tests.

pub mod api_tokens;
pub mod hypervisor;
pub mod store;
