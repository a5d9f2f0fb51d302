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

pub(super) async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let issued = match shared.auth.authenticate(&headers, None).await {
        Ok(Some(claims)) => match shared.limiter.admit_ticket(&claims.sub) {
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
