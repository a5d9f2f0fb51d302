//! Operations routes: `/healthz`, `/readyz`, `/metrics`, `/v1/status` and the status page at `/status`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::System;

pub fn router(system: Arc<System>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::temporary("/demo") }),
        )
        .route("/status", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .with_state(system)
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(system): State<Arc<System>>) -> Response {
    if system.is_ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        let body = json!({"error": {"code": "not_ready", "message": "starting, stopping, or a backend is unreachable"}});
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

pub(crate) async fn metrics() -> Response {
    match crate::telemetry::metrics_handle() {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            handle.render(),
        )
            .into_response(),
        None => {
            let body = json!({"error": {"code": "metrics_unavailable", "message": "no metrics recorder"}});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn status(State(system): State<Arc<System>>) -> Response {
    let offsets = system.input_offsets().await;
    let derived = system
        .bus
        .end_offset(super::operators::DERIVED_TOPIC, 0)
        .await
        .unwrap_or(0);
    Json(json!({
        "uptimeSecs": system.started.elapsed().as_secs(),
        "durable": system.durable,
        "ingest": system.ingestor.stats().snapshot(),
        "derivedTopic": {"total": derived},
        "inputTopic": {"partitions": offsets.len(), "endOffsets": offsets, "total": offsets.iter().sum::<u64>()},
    }))
    .into_response()
}

async fn status_page() -> Html<&'static str> {
    Html(include_str!("status.html"))
}
