//! Recording, state-keeping in-memory implementations of every backend trait, for tests and
//! for embedding without a hypervisor. Needs the `fake` feature
//! (off by default; turn it on in `[dev-dependencies]`).

mod api_tokens;
pub mod boot;
pub mod clock;
pub mod firewall;
pub mod hypervisor;
pub mod secrets;
pub mod store;

pub use clock::ManualClock;
pub use firewall::FakeFirewall;
pub use hypervisor::FakeHypervisor;
pub use secrets::MemorySecretStore;
pub use store::MemoryStore;
