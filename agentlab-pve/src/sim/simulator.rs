//! [`Simulator`]: starts the PVE API simulator on a local port and exposes its state, fault
//! injection, boot hook and request log to tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::BootHook;
use super::faults::FaultRule;
use super::schema::{Lookup, Schema, SchemaError};
use super::server::{RecordedRequest, SimInner, handle, lock};
use super::state::{Power, SeedVm, SimConfig, State};
use super::tasks::Tasks;
use super::tls::{SimTls, TlsSetupError};
use super::validate::validate;

/// Simulator start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The schema could not be loaded.
    #[error("Cannot load the PVE schema")]
    Schema(#[from] SchemaError),
    /// The TLS material could not be generated.
    #[error("Cannot set up simulator TLS")]
    Tls(#[source] TlsSetupError),
    /// The listener could not be bound.
    #[error("Cannot listen on {addr}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A running PVE API simulator (HTTP). Stops when dropped.
#[derive(Debug)]
pub struct Simulator {
    inner: Arc<SimInner>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    tls: Option<SimTls>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The schema path relative to this crate (`../../shared/pve/apidoc.json`).
pub fn default_schema_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/pve/apidoc.json"
    ))
}

/// The PVE 8.4 schema path relative to this crate.
pub fn pve84_schema_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/pve/apidoc-pve8.4.json"
    ))
}

impl Simulator {
    /// Loads the schema and serves HTTP on `addr` (`127.0.0.1:0` for an ephemeral port).
    pub async fn start(config: SimConfig, addr: &str) -> Result<Self, SimError> {
        Self::start_inner(config, addr, None).await
    }

    /// Like [`Simulator::start`], but HTTPS with a freshly generated CA ([`Simulator::tls`]).
    pub async fn start_https(config: SimConfig, addr: &str) -> Result<Self, SimError> {
        let tls = SimTls::generate().map_err(SimError::Tls)?;
        Self::start_inner(config, addr, Some(tls)).await
    }

    /// The generated CA and certificate fingerprint (HTTPS mode).
    pub fn tls(&self) -> Option<&SimTls> {
        self.tls.as_ref()
    }

    async fn start_inner(
        config: SimConfig,
        addr: &str,
        tls: Option<SimTls>,
    ) -> Result<Self, SimError> {
        let schema = Schema::load(&config.schema_path)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| SimError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
        let inner = Arc::new(SimInner {
            config,
            schema,
            state: Mutex::new(State::default()),
            tasks: Mutex::new(Tasks::default()),
            faults: Mutex::new(Vec::new()),
            records: Mutex::new(Vec::new()),
            hook: Mutex::new(None),
            storage_locks: Mutex::new(BTreeMap::new()),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        let server = match tls.clone() {
            Some(tls) => tokio::spawn(tls.serve(listener, app)),
            None => tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "pve-sim server stopped");
                }
            }),
        };
        Ok(Self {
            inner,
            addr: local,
            server,
            tls,
        })
    }

    /// Base URL (`http://127.0.0.1:PORT`, or `https://` in HTTPS mode).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Adds a VM or template.
    pub fn add_vm(&self, seed: &SeedVm) {
        self.inner.state().seed(seed);
    }

    /// Sets the boot hook (VM started/stopped, guest-agent file written).
    pub fn set_boot_hook(&self, hook: BootHook) {
        *lock(&self.inner.hook) = Some(hook);
    }

    /// Adds a fault-injection rule.
    pub fn add_fault(&self, rule: FaultRule) {
        lock(&self.inner.faults).push(rule);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.records).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.inner.records).clear();
    }

    /// Panics listing every recorded request that failed schema validation.
    pub fn assert_all_valid(&self) {
        let bad: Vec<String> = self
            .requests()
            .iter()
            .filter_map(|r| {
                r.validation
                    .as_ref()
                    .err()
                    .map(|e| format!("{} {} {:?}: {e}", r.method, r.path, r.params))
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{} request(s) failed PVE schema validation:\n{}",
            bad.len(),
            bad.join("\n")
        );
        assert!(!self.requests().is_empty(), "no requests were recorded");
    }

    /// Re-validates every recorded request against another schema (e.g. PVE 8.4); returns the failures.
    pub fn invalid_against(&self, schema: &Schema) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|r| {
                let problem = match schema.lookup(&r.method, &r.path) {
                    Lookup::NoPath | Lookup::NoMethod => Some("no such method".to_owned()),
                    Lookup::Found { method, vars, .. } => validate(method, &vars, &r.params)
                        .err()
                        .map(|e| format!("{e:?}")),
                };
                problem.map(|p| format!("{} {}: {p}", r.method, r.path))
            })
            .collect()
    }

    /// VM ids present.
    pub fn vm_ids(&self) -> Vec<u32> {
        self.inner.state().vms.keys().copied().collect()
    }

    /// A VM's config.
    pub fn vm_config(&self, vmid: u32) -> Option<BTreeMap<String, String>> {
        self.inner
            .state()
            .vms
            .get(&vmid)
            .map(|vm| vm.config.clone())
    }

    /// A VM's power state.
    pub fn power(&self, vmid: u32) -> Option<Power> {
        self.inner.state().vms.get(&vmid).map(|vm| vm.power)
    }

    /// A VM's node.
    pub fn vm_node(&self, vmid: u32) -> Option<String> {
        self.inner.state().vms.get(&vmid).map(|vm| vm.node.clone())
    }

    /// Moves a VM to another node (as a migration would); `false` if it does not exist.
    pub fn migrate(&self, vmid: u32, node: &str) -> bool {
        self.inner
            .state()
            .vms
            .get_mut(&vmid)
            .map(|vm| vm.node = node.to_owned())
            .is_some()
    }

    /// A file written into the guest through the agent.
    pub fn guest_file(&self, vmid: u32, path: &str) -> Option<Vec<u8>> {
        self.inner
            .state()
            .vms
            .get(&vmid)
            .and_then(|vm| vm.files.get(path).cloned())
    }

    /// All volume ids with their owner vmid.
    pub fn volumes(&self) -> BTreeMap<String, u32> {
        self.inner
            .state()
            .volumes
            .iter()
            .map(|(k, v)| (k.clone(), v.owner))
            .collect()
    }
}
