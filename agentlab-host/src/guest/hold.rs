//! A response body that keeps a value alive until hyper has written the response and dropped
//! the body: the guest routes hold an [`agentlab_core::engine::AfterReport`] in it, so a
//! finished job's sandbox is torn down only after the runner's final report was answered.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// `inner`, holding `held` until dropped.
struct Holding<T> {
    inner: Body,
    _held: T,
}

impl<T: Send + Unpin + 'static> http_body::Body for Holding<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A 200 JSON response whose body holds `held` until the response is written.
pub fn json_holding<T: Send + Unpin + 'static>(value: &serde_json::Value, held: T) -> Response {
    let body = Body::new(Holding {
        inner: Body::from(value.to_string()),
        _held: held,
    });
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use http_body_util::BodyExt;

    use super::*;

    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_held_value_lives_until_the_body_is_consumed_and_dropped() {
        let dropped = Arc::new(AtomicBool::new(false));
        let resp = json_holding(&serde_json::json!({"a": 1}), Flag(Arc::clone(&dropped)));
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let body = resp.into_body();
        assert!(!dropped.load(Ordering::SeqCst));
        let bytes = body.collect().await.expect("body").to_bytes();
        assert_eq!(&bytes[..], br#"{"a":1}"#);
        assert!(
            dropped.load(Ordering::SeqCst),
            "collect consumed and dropped the body"
        );
    }
}
