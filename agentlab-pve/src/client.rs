//! A small typed PVE REST client on reqwest: token header (marked sensitive), form bodies with
//! `1`/`0` booleans, query strings for GET/DELETE, PVE's error envelope, retries of idempotent
//! GETs on dropped connections, and counters that tests and benches read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::Value;

use crate::error::PveError;
use crate::options::PveOptions;

/// Request parameters (name, value); booleans already `1`/`0`.
pub type Params = Vec<(&'static str, String)>;

/// `1`/`0` for a boolean.
pub fn b(v: bool) -> String {
    if v { "1".into() } else { "0".into() }
}

/// Counters of what the backend had to do; read with [`PveCounters::snapshot`].
#[derive(Debug, Default)]
pub struct PveCounters {
    requests: AtomicU64,
    lock_retries: AtomicU64,
    clone_permit_waits: AtomicU64,
    transient_task_polls: AtomicU64,
    agent_polls: AtomicU64,
    connection_retries: AtomicU64,
}

/// A point-in-time copy of [`PveCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// HTTP requests sent.
    pub requests: u64,
    /// Operations retried after a lock timeout.
    pub lock_retries: u64,
    /// Clones that waited for a per-template permit.
    pub clone_permit_waits: u64,
    /// Task polls answered "no such task" (not visible yet).
    pub transient_task_polls: u64,
    /// Guest-agent polls before it answered.
    pub agent_polls: u64,
    /// GETs retried after a dropped connection.
    pub connection_retries: u64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// See [`CounterSnapshot::lock_retries`].
    LockRetry,
    /// See [`CounterSnapshot::clone_permit_waits`].
    ClonePermitWait,
    /// See [`CounterSnapshot::transient_task_polls`].
    TransientTaskPoll,
    /// See [`CounterSnapshot::agent_polls`].
    AgentPoll,
}

impl PveCounters {
    /// Current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            requests: g(&self.requests),
            lock_retries: g(&self.lock_retries),
            clone_permit_waits: g(&self.clone_permit_waits),
            transient_task_polls: g(&self.transient_task_polls),
            agent_polls: g(&self.agent_polls),
            connection_retries: g(&self.connection_retries),
        }
    }

    /// Increments one counter.
    pub fn bump(&self, c: Counter) {
        let a = match c {
            Counter::LockRetry => &self.lock_retries,
            Counter::ClonePermitWait => &self.clone_permit_waits,
            Counter::TransientTaskPoll => &self.transient_task_polls,
            Counter::AgentPoll => &self.agent_polls,
        };
        a.fetch_add(1, Ordering::Relaxed);
    }
}

/// The HTTP side of the backend.
#[derive(Debug, Clone)]
pub struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) auth: HeaderValue,
    inflight: Arc<tokio::sync::Semaphore>,
    /// Per-node request budgets (`/nodes/<node>/…`), created on first use.
    per_node: Arc<crate::budget::NodeBudgets>,
    /// Learned task durations by type, for polling near a task's expected end.
    pub(crate) task_times: Arc<crate::task_times::TaskTimes>,
    /// Shared counters.
    pub counters: Arc<PveCounters>,
}

/// Percent-encodes one path segment (UPIDs, volume ids).
pub fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Api {
    /// Builds the client from options.
    pub fn new(opts: &PveOptions) -> Result<Self, PveError> {
        let mut auth = HeaderValue::from_str(&format!(
            "PVEAPIToken={}={}",
            opts.token_id,
            opts.token_secret.expose()
        ))
        .map_err(|_| {
            PveError::Setup("token id or secret contains invalid header characters".into())
        })?;
        auth.set_sensitive(true);
        let builder = reqwest::Client::builder()
            .use_rustls_tls()
            .pool_idle_timeout(Duration::from_secs(4))
            .timeout(Duration::from_millis(opts.poll.request_timeout_ms));
        let http = crate::tls::configure(builder, &opts.tls)?
            .build()
            .map_err(|e| PveError::Setup(format!("HTTP client: {e}")))?;
        let base = format!("{}/api2/json", opts.url.trim_end_matches('/'));
        Ok(Self {
            http,
            base,
            auth,
            inflight: Arc::new(tokio::sync::Semaphore::new(opts.poll.max_inflight.max(1))),
            per_node: Arc::new(crate::budget::NodeBudgets::new(
                opts.poll.max_inflight_per_node.max(1),
            )),
            task_times: Arc::default(),
            counters: Arc::default(),
        })
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &Params) -> Result<Value, PveError> {
        self.call(Method::GET, path, query).await
    }

    /// `POST path` with a form body.
    pub async fn post(&self, path: &str, form: &Params) -> Result<Value, PveError> {
        self.call(Method::POST, path, form).await
    }

    /// `PUT path` with a form body.
    pub async fn put(&self, path: &str, form: &Params) -> Result<Value, PveError> {
        self.call(Method::PUT, path, form).await
    }

    /// `DELETE path?query`.
    pub async fn delete(&self, path: &str, query: &Params) -> Result<Value, PveError> {
        self.call(Method::DELETE, path, query).await
    }

    async fn call(&self, method: Method, path: &str, params: &Params) -> Result<Value, PveError> {
        let attempts: u32 = if method == Method::GET { 3 } else { 1 };
        let mut last = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                self.counters
                    .connection_retries
                    .fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            match self.once(method.clone(), path, params).await {
                Err(e @ PveError::Connection { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| PveError::Connection {
            call: format!("{method} {path}"),
            detail: "no attempt".into(),
        }))
    }

    async fn once(&self, method: Method, path: &str, params: &Params) -> Result<Value, PveError> {
        let call = format!("{method} {path}");
        let closed = || PveError::Connection {
            call: call.clone(),
            detail: "client closed".into(),
        };
        // The node's budget first, so a busy node never holds global slots others could use.
        let _node = match crate::budget::node_of(path) {
            Some(node) => Some(self.per_node.acquire(node).await.map_err(|_| closed())?),
            None => None,
        };
        let _permit = self.inflight.acquire().await.map_err(|_| closed())?;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let encoded = {
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for (k, v) in params {
                ser.append_pair(k, v);
            }
            ser.finish()
        };
        let mut url = format!("{}{path}", self.base);
        let body_method = method == Method::POST || method == Method::PUT;
        if !body_method && !encoded.is_empty() {
            url.push('?');
            url.push_str(&encoded);
        }
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header(AUTHORIZATION, self.auth.clone());
        if body_method {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded);
        }
        let conn = |e: &reqwest::Error| PveError::Connection {
            call: call.clone(),
            detail: error_chain(e),
        };
        let resp = req.send().await.map_err(|e| conn(&e))?;
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let bytes = resp.bytes().await.map_err(|e| conn(&e))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return body.get("data").cloned().ok_or_else(|| PveError::Decode {
                call,
                detail: "no `data` in answer".into(),
            });
        }
        let mut message = body
            .get("message")
            .and_then(Value::as_str)
            .map(|m| m.trim_end().to_owned())
            .or(reason)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        if let Some(errors) = body.get("errors").and_then(Value::as_object) {
            let list: Vec<String> = errors
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default().trim_end()))
                .collect();
            message = format!("{message} ({})", list.join("; "));
        }
        Err(PveError::Api {
            call,
            status: status.as_u16(),
            message,
        })
    }
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// A JSON value as u64, accepting numbers and numeric strings (PVE sends both).
pub fn lenient_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.parse().ok(),
        Value::Bool(b) => Some(u64::from(*b)),
        _ => None,
    }
}
