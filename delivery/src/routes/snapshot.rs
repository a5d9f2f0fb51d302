//! `GET /v1/topics/{topic}/snapshot`: the topic's current state as a `SNAPSHOT` message (same access rules as the
//! stream; `404 no_snapshot` when the topic has no state).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::delivery::Shared;
use crate::message::snapshot_json;
use crate::topics::Topic;
use crate::{DeliveryError, metrics};

pub(super) async fn snapshot(
    State(shared): State<Arc<Shared>>,
    topic: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    // A name that does not decode (percent-encoded bytes that are not UTF-8) is no topic: the JSON error, not
    // axum's plain-text rejection.
    let Ok(Path(topic)) = topic else {
        return DeliveryError::InvalidTopic.into_response();
    };
    match answer(&shared, &topic, &headers).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn answer(shared: &Shared, topic: &str, headers: &HeaderMap) -> Result<Response, DeliveryError> {
    let topic = Topic::parse(topic)?;
    shared.config.check_known(&topic)?;
    let claims = shared
        .auth
        .authenticate(headers, None, topic.kind().is_public())
        .await?;
    if let Err(error) = topic.check_access(claims.as_ref()) {
        metrics::auth_rejected(error.code());
        return Err(error);
    }
    let head = shared.history.head(topic.name()).await?;
    let state = shared
        .snapshots
        .snapshot(topic.name())
        .await
        .ok_or(DeliveryError::NoSnapshot)?;
    let json = snapshot_json(topic.name(), head, &state, chrono::Utc::now())?;
    let mut response = json.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // A private topic's state is for its reader alone: no shared cache may keep it, no cache at all store it.
    let cache_control = if topic.kind().is_public() {
        "no-cache"
    } else {
        "private, no-store"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    Ok(response)
}
