//! Allocation of VM ids and the addresses derived from them.
//!
//! A sandbox's IP and MAC are pure functions of its vmid: IP = subnet base + 2 +
//! (vmid - range start), MAC = `02:a9:` + the vmid's four bytes. Nothing else needs to be
//! stored or reserved, and a range that fits the subnet can never hand out an address twice.
//!
//! An id (and so its IP and MAC) goes back to the pool only after a quarantine
//! (`LabSettings::vmid_quarantine`, config `vmid_range.quarantine_secs`) since its sandbox was
//! destroyed: packets, neighbour entries and TCP state of the old sandbox (a connection the
//! daemon still holds, a peer in TIME_WAIT) must not meet a new sandbox with the same address.
//! Never-used ids come first; then the least recently destroyed.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::engine::error::EngineError;
use crate::engine::lab::{Lab, LabSettings};
use crate::ids::Vmid;
use crate::store::SandboxFilter;

/// The address of `vmid` on the agent subnet, or `None` when outside the range/subnet.
pub fn ip_for(settings: &LabSettings, vmid: Vmid) -> Option<Ipv4Addr> {
    let offset = vmid.get().checked_sub(settings.vmid_start)?;
    if vmid.get() > settings.vmid_end {
        return None;
    }
    let host_bits = 32 - u32::from(settings.subnet_prefix);
    let host = offset.checked_add(2)?;
    if host_bits < 32 && u64::from(host) >= (1u64 << host_bits) - 1 {
        return None;
    }
    Some(Ipv4Addr::from(
        u32::from(settings.subnet_base).checked_add(host)?,
    ))
}

/// The locally administered MAC address of `vmid`.
pub fn mac_for(vmid: Vmid) -> String {
    let b = vmid.get().to_be_bytes();
    format!("02:a9:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

impl Lab {
    /// The ids the hypervisor reports in use. Asked *before* taking the allocation lock, so
    /// a slow backend call never serializes unrelated creates; an id taken in between is
    /// caught by the clone ("already exists" moves the request to a new id).
    pub(crate) async fn external_ids(&self) -> Result<Vec<Vmid>, EngineError> {
        self.deps
            .hypervisor
            .used_ids()
            .await
            .map_err(|source| EngineError::Hypervisor {
                call: "used_ids",
                source,
            })
    }

    /// Picks the lowest free id in the range that is neither in the store (unless destroyed)
    /// nor in `external` (from [`Lab::external_ids`]), and not in `also_skip`. Called under
    /// the allocation lock.
    pub(crate) async fn allocate_vmid(
        &self,
        also_skip: &[Vmid],
        external: &[Vmid],
    ) -> Result<Vmid, EngineError> {
        let mut used: HashSet<u32> = also_skip.iter().map(|v| v.get()).collect();
        let all = SandboxFilter {
            include_destroyed: true,
            ..SandboxFilter::default()
        };
        let mut destroyed: Vec<&crate::model::Sandbox> = Vec::new();
        let known = self.deps.store.list_sandboxes(&all).await?;
        for sb in &known {
            if sb.state.is_terminal() {
                destroyed.push(sb);
            } else {
                used.insert(sb.vmid.get());
            }
        }
        used.extend(external.iter().map(|v| v.get()));
        let (start, end) = (self.settings.vmid_start, self.settings.vmid_end);
        let usable = |n: u32| {
            Vmid::new(n)
                .ok()
                .filter(|v| ip_for(&self.settings, *v).is_some())
        };
        // Never-used ids first, so a vmid's event history belongs to one sandbox; then the ids
        // of destroyed sandboxes, least recently destroyed first.
        let reused: HashSet<u32> = destroyed.iter().map(|s| s.vmid.get()).collect();
        if let Some(v) = (start..=end)
            .filter(|n| !used.contains(n) && !reused.contains(n))
            .find_map(usable)
        {
            return Ok(v);
        }
        destroyed.sort_by_key(|s| s.updated_at);
        let now = self.now();
        let quarantine = self.settings.vmid_quarantine;
        let free: Vec<&crate::model::Sandbox> = destroyed
            .iter()
            .copied()
            .filter(|s| (start..=end).contains(&s.vmid.get()) && !used.contains(&s.vmid.get()))
            .collect();
        let rested = |s: &crate::model::Sandbox| {
            now.signed_duration_since(s.updated_at)
                .to_std()
                .is_ok_and(|age| age >= quarantine)
        };
        free.iter()
            .filter(|s| rested(s))
            .map(|s| s.vmid.get())
            .find_map(usable)
            .ok_or(EngineError::Exhausted {
                start,
                end,
                quarantined: free.iter().filter(|s| !rested(s)).count(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_derive_from_vmid() {
        let s = LabSettings::default();
        let v = Vmid::new(9100).unwrap();
        assert_eq!(ip_for(&s, v), Some(Ipv4Addr::new(10, 77, 0, 2)));
        assert_eq!(
            ip_for(&s, Vmid::new(9355).unwrap()),
            Some(Ipv4Addr::new(10, 77, 1, 1))
        );
        assert_eq!(ip_for(&s, Vmid::new(9099).unwrap()), None);
        assert_eq!(mac_for(Vmid::new(9100).unwrap()), "02:a9:00:00:23:8c");
    }

    #[test]
    fn small_subnet_limits_range() {
        let s = LabSettings {
            subnet_prefix: 30,
            ..LabSettings::default()
        };
        // /30: .0 network, .1 gateway, .2 one host, .3 broadcast.
        assert!(ip_for(&s, Vmid::new(9100).unwrap()).is_some());
        assert!(ip_for(&s, Vmid::new(9101).unwrap()).is_none());
    }
}
