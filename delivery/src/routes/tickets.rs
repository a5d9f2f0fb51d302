//! `POST /v1/tickets`: exchanges a JWT (Bearer header or cookie) for a single-use ticket of at most 60 s, for
//! `GET /v1/stream?ticket=...` from a browser's EventSource, which cannot send headers. Answers `201`
//! `{"ticket":"...","expiresInSecs":60}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use social_auth::AuthError;

use crate::DeliveryError;
use crate::delivery::Shared;
use crate::metrics;

/// Counts the ticket against the user's tickets per minute (`max_new_streams_per_user_per_minute`): on every node
/// when the nodes share a stream-limit store, else on this one.
async fn admit(shared: &Shared, user: &str) -> Result<(), DeliveryError> {
    let Some(store) = &shared.stream_limits else {
        return shared.limiter.admit_ticket(user);
    };
    let admitted = store
        .admit_ticket(user, shared.config.max_new_streams_per_user_per_minute)
        .await;
    if matches!(admitted, Err(DeliveryError::TicketRateLimited { .. })) {
        metrics::limit_rejected("tickets");
    }
    admitted
}

pub(super) async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let issued = match shared.auth.authenticate(&headers, None, false).await {
        Ok(Some(claims)) => match admit(&shared, &claims.sub).await {
            Ok(()) => shared.auth.issue_ticket(claims).await,
            Err(refused) => Err(refused),
        },
        Ok(None) => Err(DeliveryError::Auth(AuthError::MissingToken)),
        Err(error) => Err(error),
    };
    match issued {
        Ok((ticket, ttl)) => {
            let mut response = (
                StatusCode::CREATED,
                Json(json!({"ticket": ticket, "expiresInSecs": ttl})),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}
