//! Pagination of the list routes: `limit` (default and maximum from `limits:`), `cursor`, and
//! the `x-next-cursor` response header naming where the next page starts. The body stays a
//! JSON array, so clients that read one page keep working.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use agentlab_core::api::validate::in_range;
use agentlab_core::config::LimitsConfig;

use crate::control::error::ApiError;

/// Response header holding the next page's `cursor` (absent on the last page).
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// The page size of a request: `requested`, or `limits.list_default_limit`; outside
/// `1..=limits.list_max_limit` is 422 `out_of_range`.
pub fn limit(requested: Option<u32>, limits: &LimitsConfig) -> Result<u32, ApiError> {
    let limit = requested.unwrap_or(limits.list_default_limit);
    in_range("limit", limit, 1, limits.list_max_limit)?;
    Ok(limit)
}

/// 400 `invalid_cursor`.
pub fn bad_cursor(cursor: &str) -> ApiError {
    let shown: String = cursor.chars().take(64).collect();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
        format!("Invalid cursor {shown:?}: pass the x-next-cursor value of the previous page"),
    )
}

/// One page: a JSON array plus the next cursor, if any.
#[derive(Debug)]
pub struct Paged<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts.
    pub next: Option<String>,
}

impl<T> Paged<T> {
    /// The first `limit` of `items` (fetched with one extra to learn whether more follow);
    /// the next cursor is `key` of the last item kept.
    pub fn from_extra(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let limit = limit as usize;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(key) } else { None };
        Self { items, next }
    }

    /// A page of an in-memory list sorted by `key`: the items whose key is after `cursor`.
    pub fn slice(
        items: Vec<T>,
        cursor: Option<&str>,
        limit: u32,
        key: impl Fn(&T) -> String,
    ) -> Self {
        let rest: Vec<T> = items
            .into_iter()
            .filter(|t| cursor.is_none_or(|c| key(t).as_str() > c))
            .take(limit as usize + 1)
            .collect();
        Self::from_extra(rest, limit, key)
    }
}

impl<T: Serialize> IntoResponse for Paged<T> {
    fn into_response(self) -> Response {
        let mut resp = Json(self.items).into_response();
        if let Some(next) = self.next.and_then(|n| HeaderValue::from_str(&n).ok()) {
            resp.headers_mut().insert(NEXT_CURSOR, next);
        }
        resp
    }
}
