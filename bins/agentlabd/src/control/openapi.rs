//! The OpenAPI 3.1 document of the control API, built from one route table. A test keeps
//! `docs/openapi.json` identical to what `/v1/openapi.json` serves.

use serde_json::{Value, json};

/// (method, path, summary, request body schema, success status, response schema).
type Route = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
    &'static str,
);

/// Every route of the control API.
const ROUTES: &[Route] = &[
    ("get", "/healthz", "Liveness probe", None, 200, "Health"),
    (
        "get",
        "/v1/status",
        "Counts per state, versions, backend health, disk usage",
        None,
        200,
        "Status",
    ),
    (
        "get",
        "/v1/openapi.json",
        "This document",
        None,
        200,
        "Object",
    ),
    (
        "post",
        "/v1/sandboxes",
        "Create a sandbox (provisioning continues in the background)",
        Some("CreateSandboxRequest"),
        202,
        "Sandbox",
    ),
    (
        "get",
        "/v1/sandboxes",
        "List sandboxes by vmid (query: state=A,B profile= all=true limit=N cursor=VMID; one page, \
         x-next-cursor header when more follow)",
        None,
        200,
        "SandboxList",
    ),
    (
        "get",
        "/v1/sandboxes/{vmid}",
        "Show a sandbox (with `usage`: pid, rss_bytes, cpu_seconds of its VM process where the \
         backend reports it, e.g. qemu)",
        None,
        200,
        "SandboxDetail",
    ),
    (
        "delete",
        "/v1/sandboxes/{vmid}",
        "Destroy a sandbox (202 while DESTROYING: an attempt failed and is retried)",
        None,
        200,
        "Sandbox",
    ),
    (
        "post",
        "/v1/sandboxes/{vmid}/start",
        "Start a stopped sandbox",
        None,
        200,
        "Sandbox",
    ),
    (
        "post",
        "/v1/sandboxes/{vmid}/stop",
        "Stop a sandbox",
        None,
        200,
        "Sandbox",
    ),
    (
        "post",
        "/v1/sandboxes/{vmid}/lease/renew",
        "Renew the lease",
        Some("RenewLeaseRequest"),
        200,
        "Sandbox",
    ),
    (
        "get",
        "/v1/sandboxes/{vmid}/events",
        "Events (query: tail after|cursor limit follow; one page of at most limit, x-next-cursor \
         header when more follow; follow streams NDJSON pushed as events are appended)",
        None,
        200,
        "EventList",
    ),
    (
        "post",
        "/v1/sandboxes/{vmid}/stream",
        "Exec, shell, copy or forward into a running sandbox: send Connection: upgrade and \
         Upgrade: agentlab-stream/1; after 101 Switching Protocols both sides speak the frame \
         protocol of docs/sandbox-access.md (first client frame: the request). 404 \
         sandbox_not_found, 409 sandbox_gone or agent_not_connected, 400 upgrade_required",
        None,
        101,
        "Empty",
    ),
    (
        "post",
        "/v1/jobs",
        "Run a job. Optional `result` {push, branch, commit_leftovers, open_pr, pr_title, \
         pr_base} overrides the profile's `result:` (results back to git, docs/results.md); an \
         unsafe or invalid combination is 422 invalid_request. The job then carries `result` \
         (resolved) and, once the runner pushed, `pushed` {branch, commit, pr_url}",
        Some("RunJobRequest"),
        202,
        "Job",
    ),
    (
        "get",
        "/v1/jobs",
        "List jobs, newest first (query: state=A,B limit=N cursor=C; one page, x-next-cursor \
         header when more follow)",
        None,
        200,
        "JobList",
    ),
    ("get", "/v1/jobs/{id}", "Show a job", None, 200, "Job"),
    (
        "post",
        "/v1/jobs/{id}/cancel",
        "Cancel a job",
        None,
        200,
        "Job",
    ),
    (
        "get",
        "/v1/jobs/{id}/events",
        "Job events and log lines (query: tail after|cursor limit follow; one page, x-next-cursor \
         header when more follow)",
        None,
        200,
        "EventList",
    ),
    (
        "get",
        "/v1/jobs/{id}/artifacts",
        "List artifacts by name (query: limit=N cursor=NAME; one page, x-next-cursor header when \
         more follow)",
        None,
        200,
        "ArtifactList",
    ),
    (
        "get",
        "/v1/jobs/{id}/artifacts/{name}",
        "Download an artifact (header x-sha256)",
        None,
        200,
        "Binary",
    ),
    (
        "post",
        "/v1/workspaces",
        "Create a workspace",
        Some("CreateWorkspaceRequest"),
        201,
        "Workspace",
    ),
    (
        "get",
        "/v1/workspaces",
        "List workspaces by name (query: limit=N cursor=NAME; one page, x-next-cursor header when \
         more follow)",
        None,
        200,
        "WorkspaceList",
    ),
    (
        "get",
        "/v1/workspaces/{id}",
        "Show a workspace (id or name)",
        None,
        200,
        "Workspace",
    ),
    (
        "delete",
        "/v1/workspaces/{id}",
        "Delete a detached workspace",
        None,
        204,
        "Empty",
    ),
    (
        "post",
        "/v1/workspaces/{id}/attach",
        "Attach to a sandbox",
        Some("AttachWorkspaceRequest"),
        200,
        "Workspace",
    ),
    (
        "post",
        "/v1/workspaces/{id}/detach",
        "Detach from its sandbox",
        None,
        200,
        "Workspace",
    ),
    (
        "post",
        "/v1/workspaces/{id}/rebind",
        "Move to a new sandbox",
        Some("RebindWorkspaceRequest"),
        200,
        "RebindResponse",
    ),
    (
        "get",
        "/v1/profiles",
        "List profiles by name (query: limit=N cursor=NAME; one page, x-next-cursor header when \
         more follow)",
        None,
        200,
        "ProfileList",
    ),
    (
        "get",
        "/v1/profiles/{name}",
        "Show a profile",
        None,
        200,
        "Object",
    ),
    (
        "get",
        "/v1/admin/backup",
        "Stream a backup archive (tar: manifest.json with SHA-256 per file, schema and daemon \
         version; state.db from an online SQLite backup; encrypted secret bundles; profiles; \
         the config unless it holds an inline token secret). The daemon writes no file for the \
         caller; 500 backup_failed",
        None,
        200,
        "Binary",
    ),
    (
        "post",
        "/v1/profiles/reload",
        "Read the profiles directory again and swap the set in one step (as SIGHUP does); \
         422 invalid_profile or invalid_config keeps the running set; restart_required lists \
         config keys that changed on disk but apply only after a restart",
        None,
        200,
        "ReloadReport",
    ),
    (
        "post",
        "/v1/profiles/validate",
        "Validate a YAML body of profiles",
        Some("Yaml"),
        200,
        "Object",
    ),
    (
        "post",
        "/v1/tokens",
        "Issue an API token for the remote API (Unix socket only; the answer carries the token \
         once: {token, id, name, scopes, profiles, created_at, expires_at})",
        Some("NewApiToken"),
        201,
        "ApiToken",
    ),
    (
        "get",
        "/v1/tokens",
        "List API tokens, revoked and expired ones included (Unix socket only; never a secret)",
        None,
        200,
        "ApiTokenList",
    ),
    (
        "delete",
        "/v1/tokens/{id}",
        "Revoke an API token by id or name (Unix socket only)",
        None,
        200,
        "ApiToken",
    ),
];

/// Error statuses every operation may answer, with the envelope.
const ERRORS: &[(u16, &str)] = &[
    (
        400,
        "Bad input: malformed_json (with line and column), invalid_body, invalid_query, \
         invalid_path, invalid_vmid, invalid_job_id, invalid_state_filter, invalid_cursor, invalid_utf8, \
         yaml_limit_exceeded (profile YAML nested deeper than limits.max_yaml_depth or opening \
         more than limits.max_yaml_flow_collections flow collections; not parsed)",
    ),
    (
        401,
        "Remote API only: token_required, token_invalid, token_expired, token_revoked \
         (header WWW-Authenticate: Bearer)",
    ),
    (
        403,
        "Remote API only: scope_missing (details: required, token, scopes), \
         profile_not_allowed, socket_only (token management), not_remote",
    ),
    (404, "Not found"),
    (409, "Conflict or illegal state"),
    (
        413,
        "too_large: body over limits.max_body_bytes (limits.max_profile_body_bytes for \
         /v1/profiles/validate)",
    ),
    (
        422,
        "Validation failed: invalid_request, invalid_repo_url, invalid_git_ref, invalid_name, \
         out_of_range (details: field, value, min, max; also limit outside \
         1..=limits.list_max_limit), invalid_profile, invalid_config, too_complex (parse \
         over limits.yaml_parse_timeout_ms)",
    ),
    (
        429,
        "rate_limited: over limits.socket_rate_per_sec (per uid, Unix socket) or \
         remote.rate_per_sec (per client address, remote API); header Retry-After",
    ),
    (
        503,
        "backend_unavailable, or busy (every profile parse slot of \
         limits.yaml_parse_concurrency taken)",
    ),
];

/// Builds the document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, body, status, schema) in ROUTES {
        let mut responses = serde_json::Map::new();
        if *status == 101 {
            responses.insert(
                status.to_string(),
                json!({"description": "Switching Protocols: the connection carries frames"}),
            );
        } else {
            responses.insert(status.to_string(), json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}));
        }
        for (code, text) in ERRORS {
            responses.insert(code.to_string(), json!({"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        }
        let mut op = json!({"summary": summary, "responses": responses});
        if let Some(b) = body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{b}")}}}});
        }
        let mut params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(
            super::openapi_query::for_route(method, path)
                .iter()
                .map(|(name, ty, text)| json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}, "description": text})),
        );
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        let entry = paths.entry((*path).to_owned()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    let obj = json!({"type": "object"});
    let list = json!({"type": "array", "items": {"type": "object"}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "agentlabd control API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Served on a Unix socket (full access for its group) and, when remote.listen is set, over HTTPS with API tokens (Authorization: Bearer; each route needs one scope, see docs/remote-api.md). Errors: {\"error\":{\"code\",\"message\",\"details\"}}."},
        "paths": paths,
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}},
            "Health": obj, "Status": obj, "Object": obj, "Sandbox": obj, "SandboxDetail": obj, "Job": obj, "Workspace": obj,
            "RebindResponse": obj, "ReloadReport": obj, "CreateSandboxRequest": obj, "RunJobRequest": obj, "RenewLeaseRequest": obj,
            "CreateWorkspaceRequest": obj, "AttachWorkspaceRequest": obj, "RebindWorkspaceRequest": obj,
            "SandboxList": list, "JobList": list, "EventList": list, "ArtifactList": list, "WorkspaceList": list, "ProfileList": list,
            "NewApiToken": obj, "ApiToken": obj, "ApiTokenList": list,
            "Binary": {"type": "string", "format": "binary"}, "Empty": {}, "Yaml": {"type": "string"}
        }}
    })
}

/// Serves the document, built once per process (it never changes while the daemon runs).
pub async fn serve() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    static BODY: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    let body = BODY
        .get_or_init(|| bytes::Bytes::from(document().to_string()))
        .clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
