//! Request rate limits of both control APIs (tower_governor, a GCRA per client): per local
//! user (uid) on the Unix socket, per client address on the remote API. Over the limit is
//! 429 `rate_limited` in the error envelope, with `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse as _;
use governor::middleware::NoOpMiddleware;
use tokio_util::sync::CancellationToken;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::control::error::ApiError;
use crate::socket::PeerCred;

/// Keys socket requests by the caller's uid (`SO_PEERCRED`); an unknown uid shares one key.
#[derive(Debug, Clone, Copy)]
pub struct UidKey;

impl KeyExtractor for UidKey {
    type Key = u32;

    fn extract<T>(&self, req: &Request<T>) -> Result<u32, GovernorError> {
        Ok(req
            .extensions()
            .get::<ConnectInfo<PeerCred>>()
            .and_then(|c| c.0.uid)
            .unwrap_or(u32::MAX))
    }
}

/// A limit: `per_sec` sustained, `burst` at once, `setting` named in the 429 message.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_sec: u32,
    /// Requests at once above it.
    pub burst: u32,
    /// The config key, for the message.
    pub setting: &'static str,
}

/// The layer type for key extractor `K`.
pub type Layer<K> = GovernorLayer<K, NoOpMiddleware<governor::clock::QuantaInstant>, Body>;

fn config<K: KeyExtractor>(
    rate: Rate,
    key: K,
) -> Arc<GovernorConfig<K, NoOpMiddleware<governor::clock::QuantaInstant>>> {
    let period_ns = 1_000_000_000 / u64::from(rate.per_sec.max(1));
    let cfg = GovernorConfigBuilder::default()
        .per_nanosecond(period_ns.max(1))
        .burst_size(rate.burst.max(1))
        .key_extractor(key)
        .finish()
        .unwrap_or_else(|| unreachable!("period and burst are positive"));
    Arc::new(cfg)
}

fn error_response(rate: Rate, e: GovernorError) -> Response<Body> {
    match e {
        GovernorError::TooManyRequests { wait_time, headers } => {
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "Too many requests: retry in {wait_time} s (at most {} per second, bursts of {}; {})",
                    rate.per_sec, rate.burst, rate.setting
                ),
            )
            .details(serde_json::json!({ "retry_after_secs": wait_time }))
            .into_response();
            if let Some(h) = headers {
                resp.headers_mut().extend(h);
            }
            resp
        }
        GovernorError::UnableToExtractKey => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Cannot tell the client of this request apart",
        )
        .into_response(),
        GovernorError::Other { code, msg, .. } => {
            ApiError::new(code, "rate_limited", msg.unwrap_or_default()).into_response()
        }
    }
}

/// Builds the layer for `rate` keyed by `key`, and starts a task (ended by `cancel`) that
/// forgets idle clients every minute so the table cannot grow without bound.
pub fn layer<K>(rate: Rate, key: K, cancel: CancellationToken) -> Layer<K>
where
    K: KeyExtractor + Send + Sync + 'static,
    K::Key: Send + Sync + 'static,
{
    let cfg = config(rate, key);
    let limiter = Arc::clone(cfg.limiter());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = every.tick() => limiter.retain_recent(),
            }
        }
    });
    GovernorLayer::new(cfg).error_handler(move |e| error_response(rate, e))
}
