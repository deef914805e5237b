//! The query parameters of the control API's routes, for the OpenAPI document
//! ([`super::openapi::document`]). Each route's handler deserializes its query with unknown
//! keys refused (`invalid_query`), so this table lists every key a route accepts.

/// `(name, JSON schema type, description)`.
pub type QueryParam = (&'static str, &'static str, &'static str);

const LIMIT: QueryParam = (
    "limit",
    "integer",
    "Page size (default limits.list_default_limit, at most limits.list_max_limit)",
);

const EVENTS: &[QueryParam] = &[
    (
        "tail",
        "integer",
        "Only the last N events (then, with follow, what comes after them)",
    ),
    (
        "after",
        "integer",
        "Only events with an id greater than this one",
    ),
    (
        "cursor",
        "integer",
        "Alias of after: the x-next-cursor header of the previous page",
    ),
    LIMIT,
    (
        "follow",
        "boolean",
        "Stream NDJSON: the backlog, then every new event as it is stored, until the job or \
         sandbox ends",
    ),
];

const NAME_PAGE: &[QueryParam] = &[LIMIT, ("cursor", "string", "The previous page's last name")];

/// The query parameters of `method path`, or none.
pub fn for_route(method: &str, path: &str) -> &'static [QueryParam] {
    match (method, path) {
        ("get", "/v1/sandboxes") => &[
            (
                "state",
                "string",
                "Comma-separated states (READY,RUNNING,…)",
            ),
            ("profile", "string", "Only this profile's sandboxes"),
            (
                "all",
                "boolean",
                "Include DESTROYED sandboxes (left out by default)",
            ),
            LIMIT,
            ("cursor", "string", "The previous page's last vmid"),
        ],
        ("get", "/v1/jobs") => &[
            ("state", "string", "Comma-separated job states"),
            LIMIT,
            (
                "cursor",
                "string",
                "The x-next-cursor header of the previous page",
            ),
        ],
        ("get", "/v1/jobs/{id}/artifacts") => &[
            LIMIT,
            ("cursor", "string", "The previous page's last artifact name"),
        ],
        ("get", "/v1/jobs/{id}/events" | "/v1/sandboxes/{vmid}/events") => EVENTS,
        ("get", "/v1/workspaces" | "/v1/profiles") => NAME_PAGE,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn query_names(doc: &Value, method: &str, path: &str) -> Vec<String> {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every list and events route documents its query keys; routes without a query have
    /// none.
    #[test]
    fn the_document_lists_each_routes_query_keys() {
        let doc = super::super::openapi::document();
        let names = |m, p| query_names(&doc, m, p);
        assert_eq!(
            names("get", "/v1/sandboxes"),
            ["state", "profile", "all", "limit", "cursor"]
        );
        assert_eq!(names("get", "/v1/jobs"), ["state", "limit", "cursor"]);
        for events in ["/v1/jobs/{id}/events", "/v1/sandboxes/{vmid}/events"] {
            assert_eq!(
                names("get", events),
                ["tail", "after", "cursor", "limit", "follow"]
            );
        }
        assert_eq!(names("get", "/v1/workspaces"), ["limit", "cursor"]);
        assert_eq!(names("get", "/v1/profiles"), ["limit", "cursor"]);
        assert!(names("get", "/v1/status").is_empty());
        assert!(names("post", "/v1/jobs").is_empty());
    }
}
