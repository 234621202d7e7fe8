//! The HTTP side: POST an event (any path but the probes), `/healthz`, `/readyz`, `/metrics`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::event::{Kind, Validator};
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::release::Scripts;
use crate::statsd::Statsd;
use crate::store::Store;

pub const BODY_MAX: usize = 64 * 1024;

pub struct App {
    pub validator: Validator,
    pub queue: Arc<Queue>,
    pub store: Arc<Store>,
    pub statsd: Statsd,
    pub metrics: Arc<Metrics>,
    pub scripts: Arc<Scripts>,
    pub token: Option<String>,
    /// False once shutting down.
    pub ready: AtomicBool,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(receive)
        .with_state(app)
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Ordering::SeqCst) {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render(app.queue.len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn refuse(status: StatusCode, reason: &str) -> Response {
    (status, format!("{reason}\n")).into_response()
}

async fn receive(State(app): State<Arc<App>>, request: Request<Body>) -> Response {
    if request.method() != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "POST an event (JSON)");
    }
    if !authorized(
        app.token.as_deref(),
        request.headers().get(header::AUTHORIZATION),
    ) {
        Metrics::inc(&app.metrics.unauthorized);
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (KROBS_MONITOR_TOKEN)",
        );
    }
    let Ok(body) = to_bytes(request.into_body(), BODY_MAX).await else {
        Metrics::inc(&app.metrics.rejected);
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "event larger than 64 KiB (or cut short)",
        );
    };
    let (event, key) = match app.validator.parse(&body) {
        Ok(parsed) => parsed,
        Err(reason) => {
            Metrics::inc(&app.metrics.rejected);
            tracing::info!(%reason, "event refused");
            return refuse(StatusCode::BAD_REQUEST, &reason);
        }
    };
    match app.store.first_seen(key).await {
        Ok(true) => {}
        Ok(false) => {
            Metrics::inc(&app.metrics.duplicates);
            return (StatusCode::ACCEPTED, "duplicate\n").into_response();
        }
        Err(e) => tracing::error!(error = %e, "store: dedup key not recorded; taking the event"),
    }
    Metrics::inc(&app.metrics.received);
    let owner = app
        .scripts
        .get(&event.krob)
        .owner
        .unwrap_or_else(|| "unknown".to_owned());
    for line in app.statsd.lines(&event, &owner) {
        if !app.statsd.send(&line) {
            Metrics::inc(&app.metrics.statsd_errors);
        }
    }
    if event.event != Kind::Metric {
        if let Some(dropped) = app.queue.push(event) {
            Metrics::inc(&app.metrics.dropped);
            app.statsd.send(&app.statsd.dropped(&dropped));
            tracing::warn!(run = %dropped.run(), event = dropped.event.as_str(), "queue full: event dropped");
        }
    }
    (StatusCode::ACCEPTED, "queued\n").into_response()
}

fn authorized(token: Option<&str>, given: Option<&header::HeaderValue>) -> bool {
    let Some(token) = token else { return true };
    let given = given
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(given) = given else { return false };
    // Compared in constant time for equal lengths.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}
