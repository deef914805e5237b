//! Event reads for a sandbox or job, as a JSON array or — with `follow=true` — an NDJSON
//! stream (backlog, then live events pushed as they are appended; `{}` keep-alives) that
//! ends when the subject is done. A JSON array is one page (`limit`, default and maximum from
//! `limits:`; the next page starts `after` the `x-next-cursor` id).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use agentlab_core::EventQuery;

use crate::control::AppState;
use crate::control::error::ApiError;
use crate::control::extract::{ApiPath, ApiQuery, job_id, vmid};
use crate::control::follow;
use crate::control::page::{self, Paged};

/// Query of the events routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    tail: Option<u32>,
    after: Option<i64>,
    /// Alias of `after` (the `x-next-cursor` of the previous page).
    cursor: Option<i64>,
    limit: Option<u32>,
    #[serde(default)]
    follow: bool,
}

pub async fn for_sandbox(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let vmid = vmid(&id)?;
    st.lab.sandbox(vmid).await?;
    let query = EventQuery {
        sandbox: Some(vmid),
        ..base(&q)
    };
    respond(st, query, q.follow).await
}

pub async fn for_job(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    st.lab.job(&id).await?;
    let query = EventQuery {
        job: Some(id),
        ..base(&q)
    };
    respond(st, query, q.follow).await
}

fn base(q: &EventsQuery) -> EventQuery {
    EventQuery {
        after: q.after.or(q.cursor),
        tail: q.tail,
        limit: q.limit,
        ..EventQuery::default()
    }
}

async fn respond(st: AppState, mut query: EventQuery, follow: bool) -> Result<Response, ApiError> {
    if !follow {
        let limit = page::limit(query.limit, &st.limits.config)?;
        query.limit = Some(limit);
        let events = st.lab.events(&query).await?;
        let next = (events.len() == limit as usize)
            .then(|| events.last().map(|e| e.id.to_string()))
            .flatten();
        return Ok(Paged {
            items: events,
            next,
        }
        .into_response());
    }
    let body = follow::body(st, query).await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
