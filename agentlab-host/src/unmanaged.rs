//! [`Unmanaged`]: the firewall of a config with `network.manage_firewall: false`, where the
//! operator enforces isolation by other means. The engine does not drive a firewall then; this
//! one answers every call with success and reports nothing installed.

use async_trait::async_trait;

use agentlab_core::Vmid;
use agentlab_core::firewall::{Firewall, FirewallError, FirewallState, SandboxNet};

/// A firewall that installs nothing, for `network.manage_firewall: false` (the operator
/// enforces isolation by other means): every call succeeds and nothing is reported installed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unmanaged;

#[async_trait]
impl Firewall for Unmanaged {
    async fn ensure_base(&self) -> Result<(), FirewallError> {
        Ok(())
    }

    async fn allow(&self, _sandbox: &SandboxNet) -> Result<(), FirewallError> {
        Ok(())
    }

    async fn remove(&self, _vmid: Vmid) -> Result<(), FirewallError> {
        Ok(())
    }

    async fn describe(&self) -> Result<FirewallState, FirewallError> {
        Ok(FirewallState::default())
    }
}
