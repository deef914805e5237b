//! The simulator's HTTP front: one axum fallback handler that does what pveproxy does for
//! every request — token auth, schema lookup (501 for unknown methods), parameter validation
//! (400 with PVE's `errors` map), fault injection — then dispatches to the handler modules and
//! wraps the answer in PVE's envelope. Every request is recorded with its validation result.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::faults::{FaultKind, FaultRule, fire};
use super::schema::{Lookup, Schema};
use super::state::{SimConfig, State as SimState};
use super::tasks::Tasks;
use super::validate::validate;
use super::{BootEvent, BootHook, dispatch};

/// An API error as a handler returns it.
#[derive(Debug, Clone)]
pub struct ApiErr {
    /// HTTP status.
    pub status: u16,
    /// Message.
    pub message: String,
    /// Parameter errors (400).
    pub errors: Option<BTreeMap<String, String>>,
}

impl ApiErr {
    /// 500 with `message` (PVE's answer to every handler `die`).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: 500,
            message: message.into(),
            errors: None,
        }
    }

    /// 400 with one parameter error.
    pub fn param(name: &str, message: impl Into<String>) -> Self {
        let errors = BTreeMap::from([(name.to_owned(), message.into())]);
        Self {
            status: 400,
            message: "Parameter verification failed.".into(),
            errors: Some(errors),
        }
    }
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path after `/api2/json`.
    pub path: String,
    /// Schema path template, if the path exists.
    pub template: Option<String>,
    /// Query and body parameters.
    pub params: Vec<(String, String)>,
    /// Schema validation result (`Err` holds the reason).
    pub validation: Result<(), String>,
    /// Status the simulator answered.
    pub status: u16,
}

/// Shared simulator internals.
pub struct SimInner {
    /// Settings.
    pub config: SimConfig,
    /// The API schema.
    pub schema: Schema,
    pub(crate) state: Mutex<SimState>,
    pub(crate) tasks: Mutex<Tasks>,
    pub(crate) faults: Mutex<Vec<FaultRule>>,
    pub(crate) records: Mutex<Vec<RecordedRequest>>,
    pub(crate) hook: Mutex<Option<BootHook>>,
    pub(crate) storage_locks: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Requests being answered per node (`/nodes/<node>/…`): (now, most at once).
    pub(crate) inflight: Mutex<BTreeMap<String, (usize, usize)>>,
    /// The simulated guest agent's commands.
    pub(crate) execs: Mutex<super::guest_exec::GuestExecs>,
}

/// Counts one request to a node as in flight until dropped.
struct InFlight<'a> {
    inner: &'a SimInner,
    node: Option<String>,
}

impl<'a> InFlight<'a> {
    fn enter(inner: &'a SimInner, path: &str) -> Self {
        let node = path
            .strip_prefix("/nodes/")
            .and_then(|p| p.split('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        if let Some(n) = &node {
            let mut map = lock(&inner.inflight);
            let e = map.entry(n.clone()).or_default();
            e.0 += 1;
            e.1 = e.1.max(e.0);
        }
        Self { inner, node }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(n) = &self.node
            && let Some(e) = lock(&self.inner.inflight).get_mut(n)
        {
            e.0 = e.0.saturating_sub(1);
        }
    }
}

impl std::fmt::Debug for SimInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimInner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Locks a std mutex, ignoring poisoning.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimInner {
    /// The cluster state.
    pub fn state(&self) -> MutexGuard<'_, SimState> {
        lock(&self.state)
    }

    /// Calls the boot hook (never with a lock held).
    pub fn emit(&self, event: &BootEvent) {
        let hook = lock(&self.hook).clone();
        if let Some(hook) = hook {
            hook(event);
        }
    }

    /// Whether `node` is online (configured online and not taken down at run time).
    pub fn node_online(&self, node: &str) -> bool {
        self.config.nodes.iter().any(|n| n.name == node && n.online)
            && !self.state().offline.contains(node)
    }

    /// The lock of one storage.
    pub fn storage_lock(&self, storage: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(
            lock(&self.storage_locks)
                .entry(storage.to_owned())
                .or_default(),
        )
    }
}

/// Context of one validated request.
#[derive(Debug)]
pub struct Ctx {
    /// Merged, validated parameters (path placeholders included).
    pub params: BTreeMap<String, String>,
    /// Injected task failure for the task this request starts.
    pub task_fault: Option<String>,
    /// The file of a multipart upload.
    pub upload: Option<super::images::UploadedFile>,
    /// The request's parameters as sent (every value of an array parameter).
    pub raw: Vec<(String, String)>,
}

impl Ctx {
    /// A parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }

    /// A required parameter (present after validation).
    pub fn req(&self, k: &str) -> &str {
        self.get(k).unwrap_or_default()
    }

    /// Every value of a (possibly repeated) parameter, in order.
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.raw
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter (`1`).
    pub fn flag(&self, k: &str) -> Option<bool> {
        self.get(k).map(|v| v == "1")
    }
}

/// PVE's error answer: reason phrase = first line of the message; body with `message` (and
/// `errors`), or only `{"data":null}` (+`errors`) in legacy mode (PVE before early 2025).
fn error_response(legacy: bool, err: &ApiErr) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = json!({"data": null});
    if !legacy {
        body["message"] = json!(format!("{}\n", err.message));
    }
    if let Some(errors) = &err.errors {
        body["errors"] = json!(errors);
    }
    let mut resp = (status, axum::Json(body)).into_response();
    let first = err.message.lines().next().unwrap_or_default();
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(first.as_bytes().to_vec()) {
        resp.extensions_mut().insert(reason);
    }
    resp
}

fn parse_params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if body.is_empty() {
        return Ok(out);
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if ct.starts_with("application/json") {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
        for (k, v) in v.as_object().into_iter().flatten() {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => u8::from(*b).to_string(),
                other => other.to_string(),
            };
            out.push((k.clone(), s));
        }
    } else {
        out.extend(form_urlencoded::parse(body).into_owned());
    }
    Ok(out)
}

pub(crate) fn authorized(inner: &SimInner, headers: &HeaderMap) -> bool {
    let Some(h) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(rest) = h
        .strip_prefix("PVEAPIToken=")
        .or_else(|| h.strip_prefix("PVEAPIToken "))
    else {
        return false;
    };
    let Some((id, secret)) = rest.rsplit_once('=') else {
        return false;
    };
    id == inner.config.token_id && secret == inner.config.token_secret
}

/// The axum fallback handler: the whole request pipeline.
pub async fn handle(State(inner): State<Arc<SimInner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let full_path = parts.uri.path().to_owned();
    if let Some(r) = super::control::handle(&inner, &method, &full_path, &parts.headers) {
        return r;
    }
    let Some(path) = full_path.strip_prefix("/api2/json") else {
        return error_response(
            inner.config.legacy_errors,
            &ApiErr {
                status: 501,
                message: format!("Method '{method} {full_path}' not implemented"),
                errors: None,
            },
        );
    };
    let path = path.to_owned();
    let _inflight = InFlight::enter(&inner, &path);
    if !inner.config.request_delay.is_zero() {
        tokio::time::sleep(inner.config.request_delay).await;
    }
    let multipart = super::multipart::boundary(&parts.headers);
    // pveproxy caps POST bodies at 512 KiB except file uploads, which it streams to disk.
    let limit = if multipart.is_some() {
        1 << 30
    } else {
        512 * 1024
    };
    let body = axum::body::to_bytes(body, limit).await.unwrap_or_default();
    let has_body_method = parts.method == Method::GET || parts.method == Method::DELETE;
    let (params, upload) = match &multipart {
        Some(b) => match super::multipart::parse(&body, b) {
            Ok((p, f)) => (Ok(p), f),
            Err(e) => (Err(e), None),
        },
        None => (parse_params(parts.uri.query(), &parts.headers, &body), None),
    };
    let (template, validation, outcome) = match (&params, inner.schema.lookup(&method, &path)) {
        (Err(e), _) => (
            None,
            Err(e.clone()),
            Err(ApiErr {
                status: 400,
                message: e.clone(),
                errors: None,
            }),
        ),
        (Ok(_), Lookup::NoPath | Lookup::NoMethod) => {
            let msg = format!("Method '{method} {path}' not implemented");
            (
                None,
                Err(msg.clone()),
                Err(ApiErr {
                    status: 501,
                    message: msg,
                    errors: None,
                }),
            )
        }
        (
            Ok(p),
            Lookup::Found {
                template,
                method: ms,
                vars,
            },
        ) => match validate(ms, &vars, p) {
            Ok(merged) => (Some(template.to_owned()), Ok(()), Ok(merged)),
            Err(errors) => {
                let reason = serde_json::to_string(&errors).unwrap_or_default();
                let err = ApiErr {
                    status: 400,
                    message: "Parameter verification failed.".into(),
                    errors: Some(errors),
                };
                (Some(template.to_owned()), Err(reason), Err(err))
            }
        },
    };
    let mut outcome = outcome;
    if has_body_method && !body.is_empty() && outcome.is_ok() {
        outcome = Err(ApiErr {
            status: 501,
            message: format!("Unexpected content for method '{method}'"),
            errors: None,
        });
    }
    let record_idx = {
        let mut records = lock(&inner.records);
        records.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            template: template.clone(),
            params: params.clone().unwrap_or_default(),
            validation,
            status: 0,
        });
        records.len() - 1
    };
    let response = run(
        &inner,
        &parts.headers,
        &method,
        &path,
        template.as_deref(),
        (outcome, params.unwrap_or_default()),
        upload,
    )
    .await;
    let status = response.as_ref().map_or(0, |r| r.status().as_u16());
    if let Some(r) = lock(&inner.records).get_mut(record_idx) {
        r.status = status;
    }
    response.unwrap_or_else(dropped_connection)
}

/// A response whose body fails: hyper aborts the connection mid-response.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("dropped by fault injection"))
    });
    Response::new(Body::from_stream(stream))
}

/// The validated parameters (or the error to answer) and the parameters as sent.
type Outcome = (
    Result<BTreeMap<String, String>, ApiErr>,
    Vec<(String, String)>,
);

async fn run(
    inner: &Arc<SimInner>,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    template: Option<&str>,
    (outcome, raw): Outcome,
    upload: Option<super::images::UploadedFile>,
) -> Option<Response> {
    if !authorized(inner, headers) {
        tokio::time::sleep(inner.config.auth_failure_delay).await;
        return Some(error_response(
            inner.config.legacy_errors,
            &ApiErr {
                status: 401,
                message: "Authentication failed!".into(),
                errors: None,
            },
        ));
    }
    let params = match outcome {
        Ok(p) => p,
        Err(e) => return Some(error_response(inner.config.legacy_errors, &e)),
    };
    let template = template.unwrap_or_default();
    let fired = fire(&mut lock(&inner.faults), method, path, template);
    let mut task_fault = None;
    for fault in fired {
        match fault {
            FaultKind::Latency(d) => tokio::time::sleep(d).await,
            FaultKind::Http { status, message } => {
                return Some(error_response(
                    inner.config.legacy_errors,
                    &ApiErr {
                        status,
                        message,
                        errors: None,
                    },
                ));
            }
            FaultKind::LockTimeout => {
                let id = params.get("vmid").cloned().unwrap_or_else(|| "0".into());
                let msg =
                    format!("can't lock file '/var/lock/qemu-server/lock-{id}.conf' - got timeout");
                return Some(error_response(
                    inner.config.legacy_errors,
                    &ApiErr::internal(msg),
                ));
            }
            FaultKind::Drop => return None,
            FaultKind::TaskFailure(msg) => task_fault = Some(msg),
        }
    }
    let ctx = Ctx {
        params,
        task_fault,
        upload,
        raw,
    };
    Some(match dispatch(inner, method, template, &ctx) {
        Ok((data, total)) => {
            let mut body = json!({ "data": data });
            if let Some(total) = total {
                body["total"] = json!(total);
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(e) => error_response(inner.config.legacy_errors, &e),
    })
}
