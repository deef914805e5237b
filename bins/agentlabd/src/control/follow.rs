//! The NDJSON body of a follow stream: one JSON event per line from
//! [`agentlab_core::engine::Lab::follow_events`] (pushed as events are appended), `{}` for a
//! keep-alive after [`KEEPALIVE`] without an event.

use std::time::Duration;

use agentlab_core::engine::FollowItem;
use agentlab_core::{Event, EventQuery};
use axum::body::Body;

use crate::control::AppState;
use crate::control::error::ApiError;

/// Idle time after which a stream sends a `{}` keep-alive.
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// The streaming body; ends when the subject is done or the daemon shuts down.
pub async fn body(st: AppState, query: EventQuery) -> Result<Body, ApiError> {
    let items = st
        .lab
        .follow_events(query, KEEPALIVE, st.cancel.clone())
        .await?;
    let lines =
        tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(items), |item| {
            Ok::<_, std::io::Error>(match item {
                FollowItem::Event(ev) => line(&ev),
                FollowItem::KeepAlive => "{}\n".to_owned(),
            })
        });
    Ok(Body::from_stream(lines))
}

/// One NDJSON line.
fn line(ev: &Event) -> String {
    let mut s = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}
