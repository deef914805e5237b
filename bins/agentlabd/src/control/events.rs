//! Event reads for a sandbox or job, as a JSON array or — with `follow=true` — an NDJSON
//! stream (backlog, then live events; `{}` keep-alives) that ends when the subject is done.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use agentlab_core::{Event, EventQuery, SandboxState};

use crate::control::AppState;
use crate::control::error::ApiError;
use crate::control::extract::{ApiPath, ApiQuery, job_id, vmid};

/// Query of the events routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    tail: Option<u32>,
    after: Option<i64>,
    limit: Option<u32>,
    #[serde(default)]
    follow: bool,
}

/// Poll interval of a follow stream.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Keep-alive interval of a follow stream.
const KEEPALIVE_EVERY: u32 = 50;

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
        after: q.after,
        tail: q.tail,
        limit: q.limit,
        ..EventQuery::default()
    }
}

async fn respond(st: AppState, query: EventQuery, follow: bool) -> Result<Response, ApiError> {
    let backlog = st.lab.events(&query).await?;
    if !follow {
        return Ok(Json(backlog).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let cancel = st.cancel.clone();
    tokio::spawn(async move {
        let mut last = backlog.last().map(|e| e.id).or(query.after).unwrap_or(0);
        for ev in backlog {
            if tx.send(Ok(line(&ev))).await.is_err() {
                return;
            }
        }
        let mut polls = 0u32;
        loop {
            let done = subject_done(&st, &query).await;
            let q = EventQuery {
                after: Some(last),
                tail: None,
                limit: Some(500),
                ..query.clone()
            };
            let Ok(events) = st.lab.events(&q).await else {
                return;
            };
            for ev in &events {
                last = ev.id;
                if tx.send(Ok(line(ev))).await.is_err() {
                    return;
                }
            }
            if done && events.is_empty() {
                return;
            }
            polls += 1;
            if polls.is_multiple_of(KEEPALIVE_EVERY) && tx.send(Ok("{}\n".into())).await.is_err() {
                return;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(FOLLOW_POLL) => {}
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn line(ev: &Event) -> String {
    let mut s = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// A sandbox stream ends when it is destroyed; a job stream when the job ended and its
/// sandbox is destroyed or kept alive.
async fn subject_done(st: &AppState, q: &EventQuery) -> bool {
    if let Some(id) = &q.job {
        let Ok(job) = st.lab.job(id).await else {
            return true;
        };
        if !job.state.is_terminal() {
            return false;
        }
        let Some(v) = job.sandbox else { return true };
        return match st.lab.sandbox(v).await {
            Ok(sb) => {
                sb.state == SandboxState::Destroyed
                    || sb.state == SandboxState::Stopped
                    || (sb.state.is_finished() && (job.keepalive || !sb.vm_created))
            }
            Err(_) => true,
        };
    }
    if let Some(v) = q.sandbox {
        return st
            .lab
            .sandbox(v)
            .await
            .map_or(true, |sb| sb.state == SandboxState::Destroyed);
    }
    true
}
