//! [`NftFirewall`]: the nftables implementation of [`Firewall`].
//!
//! Every change is one atomic `nft -f -` batch. The firewall keeps an in-memory record of the
//! sandboxes it allowed (the source of what to re-add on [`Firewall::ensure_base`] and what to
//! delete on [`Firewall::remove`]); [`Firewall::describe`] verifies that record against the
//! kernel. After a daemon restart the record is empty: call `ensure_base` (which resets the
//! tables, failing closed) and then `allow` for every running sandbox.
//!
//! A sandbox may hold one IPv4 and one IPv6 entry on the same port and MAC (dual stack):
//! `allow` with the other family's address adds to the sandbox, with the same family or a
//! different port/MAC it replaces the sandbox's entries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use agentlab_core::{Firewall, FirewallError, FirewallState, SandboxNet, Vmid};
use async_trait::async_trait;
use serde_json::Value;

use crate::config::NetConfig;
use crate::error::NetError;
use crate::render::same_family;
use crate::render::{Element, render_base, render_delete, render_elements, sandbox_elements};
use crate::resolve::{DomainResolver, SystemResolver, resolve_allowlist};
use crate::runner::{NftRunner, ProcessRunner};
use crate::validate::{validate_mac, validate_sandbox};

/// The nftables firewall.
#[derive(Debug)]
pub struct NftFirewall {
    pub(crate) cfg: NetConfig,
    pub(crate) runner: Arc<dyn NftRunner>,
    resolver: Arc<dyn DomainResolver>,
    /// Serialises batches so a base reset and an element change never interleave. An async
    /// mutex on purpose: it guards the order of `nft` invocations, not data.
    pub(crate) gate: tokio::sync::Mutex<()>,
    record: Mutex<BTreeMap<Vmid, Vec<SandboxNet>>>,
    /// Element changes waiting for the gate (group commit, see `batch`).
    queue: Mutex<Vec<crate::batch::Pending>>,
    /// Digest of both tables as the kernel listed them right after this firewall's last
    /// change; `None` before the first `ensure_base`/`restore` (nothing to enforce yet).
    installed: Mutex<Option<u64>>,
}

impl NftFirewall {
    /// A firewall running `cfg.nft_path` on the host.
    pub fn new(cfg: NetConfig) -> Result<Self, NetError> {
        let runner = Arc::new(ProcessRunner::new(cfg.nft_path.clone()));
        Self::with_runner(cfg, runner)
    }

    /// A firewall using `runner` (a netns runner in tests, a recording fake in unit tests).
    pub fn with_runner(cfg: NetConfig, runner: Arc<dyn NftRunner>) -> Result<Self, NetError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            runner,
            resolver: Arc::new(SystemResolver),
            gate: tokio::sync::Mutex::new(()),
            record: Mutex::new(BTreeMap::new()),
            queue: Mutex::new(Vec::new()),
            installed: Mutex::new(None),
        })
    }

    /// Replaces the resolver used for allowlist domains.
    #[must_use]
    pub fn with_resolver(mut self, resolver: Arc<dyn DomainResolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The configuration this firewall renders.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// The live listing of both AgentLab tables, or `None` when neither exists.
    pub async fn listing(&self) -> Result<Option<String>, NetError> {
        let mut out = String::new();
        for family in ["inet", "bridge"] {
            if let Ok(text) = self
                .runner
                .query(&["list", "table", family, &self.cfg.table])
                .await
            {
                out.push_str(&text);
            }
        }
        Ok(if out.is_empty() { None } else { Some(out) })
    }

    /// Deletes both AgentLab tables (a no-op when absent) and forgets all sandboxes.
    pub async fn delete_tables(&self) -> Result<(), NetError> {
        let _order = self.gate.lock().await;
        self.runner.apply(&render_delete(&self.cfg)).await?;
        self.lock_record().clear();
        *self
            .installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }

    /// A digest of the live tables (`None` when neither exists). Called with the gate held.
    async fn live_digest(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let text = self.listing().await.ok().flatten()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        Some(h.finish())
    }

    /// Records what is live now as what this firewall installed (gate held).
    pub(crate) async fn remember_installed(&self) {
        let digest = self.live_digest().await;
        *self
            .installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = digest;
    }

    /// Applies the base ruleset plus `known` in one batch (gate held).
    async fn apply_base_with(&self, known: &[SandboxNet]) -> Result<(), NetError> {
        let mut batch = render_base(&self.cfg);
        batch.push_str(&render_elements(&self.cfg, &union(known), &[]));
        self.runner.apply(&batch).await?;
        self.remember_installed().await;
        Ok(())
    }

    pub(crate) fn lock_record(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vmid, Vec<SandboxNet>>> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<crate::batch::Pending>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) async fn table_exists(&self) -> bool {
        self.runner
            .query(&["list", "table", "inet", &self.cfg.table])
            .await
            .is_ok()
    }

    /// Addresses in the kernel's `sbx_v4`/`sbx_v6` sets.
    async fn kernel_addresses(&self) -> Result<BTreeSet<String>, NetError> {
        let mut out = BTreeSet::new();
        for set in ["sbx_v4", "sbx_v6"] {
            let text = self
                .runner
                .query(&["-j", "list", "set", "inet", &self.cfg.table, set])
                .await?;
            out.extend(set_elements(&text)?);
        }
        Ok(out)
    }
}

pub(crate) fn union(entries: &[SandboxNet]) -> Vec<Element> {
    let set: BTreeSet<Element> = entries.iter().flat_map(sandbox_elements).collect();
    set.into_iter().collect()
}

/// The plain elements of a set in `nft -j list set` output.
fn set_elements(json: &str) -> Result<Vec<String>, NetError> {
    let v: Value = serde_json::from_str(json).map_err(|e| NetError::Parse(e.to_string()))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| NetError::Parse("no nftables array".into()))?;
    Ok(items
        .iter()
        .filter_map(|i| i.get("set")?.get("elem")?.as_array().cloned())
        .flatten()
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect())
}

#[async_trait]
impl Firewall for NftFirewall {
    async fn ensure_base(&self) -> Result<(), FirewallError> {
        let _order = self.gate.lock().await;
        let known: Vec<SandboxNet> = self.lock_record().values().flatten().cloned().collect();
        self.apply_base_with(&known).await?;
        tracing::info!(table = %self.cfg.table, sandboxes = known.len(), "network policy applied");
        Ok(())
    }

    async fn restore(&self, sandboxes: &[SandboxNet]) -> Result<(), FirewallError> {
        // Sandboxes this instance allowed already (e.g. provisioning that raced a restart's
        // reconcile) stay; `sandboxes` are added to them.
        let mut record: BTreeMap<Vmid, Vec<SandboxNet>> = self.lock_record().clone();
        for sandbox in sandboxes {
            validate_sandbox(&self.cfg, sandbox)?;
            let mut sbx = resolve_allowlist(self.resolver.as_ref(), sandbox).await?;
            sbx.mac = validate_mac(&sbx.mac).map_err(NetError::Invalid)?;
            let entries = record.entry(sbx.vmid).or_default();
            entries
                .retain(|e| e.iface == sbx.iface && e.mac == sbx.mac && !same_family(e.ip, sbx.ip));
            entries.push(sbx);
        }
        let _order = self.gate.lock().await;
        let known: Vec<SandboxNet> = record.values().flatten().cloned().collect();
        // One batch: the tables are never live without the sandboxes' entries.
        self.apply_base_with(&known).await?;
        *self.lock_record() = record;
        tracing::info!(table = %self.cfg.table, sandboxes = known.len(), "network policy restored");
        Ok(())
    }

    async fn enforce(&self) -> Result<bool, FirewallError> {
        let _order = self.gate.lock().await;
        let Some(expected) = *self
            .installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        else {
            return Ok(false);
        };
        if self.live_digest().await == Some(expected) {
            return Ok(false);
        }
        let known: Vec<SandboxNet> = self.lock_record().values().flatten().cloned().collect();
        tracing::warn!(table = %self.cfg.table, sandboxes = known.len(), "network policy changed outside agentlabd; re-applying");
        self.apply_base_with(&known).await?;
        Ok(true)
    }

    async fn allow(&self, sandbox: &SandboxNet) -> Result<(), FirewallError> {
        validate_sandbox(&self.cfg, sandbox)?;
        let mut sbx = resolve_allowlist(self.resolver.as_ref(), sandbox).await?;
        sbx.mac = validate_mac(&sbx.mac).map_err(NetError::Invalid)?;
        Ok(self.submit(crate::batch::Change::Allow(sbx)).await?)
    }

    async fn remove(&self, vmid: Vmid) -> Result<(), FirewallError> {
        Ok(self.submit(crate::batch::Change::Remove(vmid)).await?)
    }

    async fn describe(&self) -> Result<FirewallState, FirewallError> {
        let _order = self.gate.lock().await;
        let bridge_ok = self
            .runner
            .query(&["list", "table", "bridge", &self.cfg.table])
            .await
            .is_ok();
        if !self.table_exists().await || !bridge_ok {
            return Ok(FirewallState {
                base_applied: false,
                sandboxes: Vec::new(),
            });
        }
        let present = self.kernel_addresses().await?;
        let sandboxes = self
            .lock_record()
            .values()
            .flatten()
            .filter(|s| present.contains(&s.ip.to_string()))
            .cloned()
            .collect();
        Ok(FirewallState {
            base_applied: true,
            sandboxes,
        })
    }
}
