//! The crate's one error type. Every variant has a stable `snake_case` code and an HTTP status; the answer body is
//! always `{"error":{"code":"...","message":"..."}}`, with a generic message (details are logged, not sent).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use social_auth::AuthError;

/// Why a delivery request or a publish failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The request names no topic.
    #[error("at least one `topic` is required")]
    NoTopics,
    /// A topic name does not match any topic pattern of the contract.
    #[error("unknown or malformed topic")]
    InvalidTopic,
    /// A query parameter has an invalid value.
    #[error("invalid query parameter `{0}`")]
    InvalidParameter(&'static str),
    /// The `Last-Event-ID` (header or `lastEventId`) cannot be decoded.
    #[error("the last event id cannot be decoded; reconnect without it")]
    InvalidLastEventId,
    /// A token was presented and is not valid, or a private topic was asked for without one.
    #[error("{0}")]
    Auth(AuthError),
    /// A ticket is unknown, already used or expired.
    #[error("the ticket is unknown, used or expired")]
    InvalidTicket,
    /// The caller may not read one of the topics.
    #[error("not allowed to read this topic")]
    Forbidden,
    /// More topics in one request than the configured limit.
    #[error("too many topics in one request (at most {max})")]
    TooManyTopics { max: usize, retry_after_secs: u64 },
    /// The user already holds the configured number of concurrent streams.
    #[error("too many concurrent streams for this user")]
    TooManyStreams { retry_after_secs: u64 },
    /// The user opened too many streams in the current minute.
    #[error("too many new streams for this user; slow down")]
    RateLimited { retry_after_secs: u64 },
    /// More tickets for this user in a minute than streams it may open in one.
    #[error("too many tickets issued to this user in the last minute")]
    TicketRateLimited { retry_after_secs: u64 },
    /// The server holds its configured maximum of connections, or of outstanding tickets.
    #[error("the server is at capacity; retry later")]
    AtCapacity { retry_after_secs: u64 },
    /// A well-formed public topic nobody publishes on (see `DeliveryConfig::public_topics`).
    #[error("no such topic")]
    UnknownTopic,
    /// The topic has no current state to show.
    #[error("this topic has no snapshot")]
    NoSnapshot,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A backend (history, fan-out) failed; the detail is logged.
    #[error("a delivery backend is unavailable")]
    Backend(String),
}

impl DeliveryError {
    /// The stable code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            DeliveryError::NoTopics => "missing_topic",
            DeliveryError::InvalidTopic => "invalid_topic",
            DeliveryError::InvalidParameter(_) => "invalid_parameter",
            DeliveryError::InvalidLastEventId => "invalid_last_event_id",
            DeliveryError::Auth(error) => error.code(),
            DeliveryError::InvalidTicket => "invalid_ticket",
            DeliveryError::Forbidden => "forbidden_topic",
            DeliveryError::TooManyTopics { .. } => "too_many_topics",
            DeliveryError::TooManyStreams { .. } => "too_many_streams",
            DeliveryError::RateLimited { .. } => "stream_rate_limited",
            DeliveryError::TicketRateLimited { .. } => "ticket_rate_limited",
            DeliveryError::AtCapacity { .. } => "server_at_capacity",
            DeliveryError::NoSnapshot => "no_snapshot",
            DeliveryError::UnknownTopic => "unknown_topic",
            DeliveryError::ShuttingDown => "shutting_down",
            DeliveryError::Backend(_) => "backend_unavailable",
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            DeliveryError::NoTopics
            | DeliveryError::InvalidTopic
            | DeliveryError::InvalidParameter(_)
            | DeliveryError::InvalidLastEventId => StatusCode::BAD_REQUEST,
            DeliveryError::Auth(error) => {
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::UNAUTHORIZED)
            }
            DeliveryError::InvalidTicket => StatusCode::UNAUTHORIZED,
            DeliveryError::Forbidden => StatusCode::FORBIDDEN,
            DeliveryError::TooManyTopics { .. }
            | DeliveryError::TooManyStreams { .. }
            | DeliveryError::RateLimited { .. }
            | DeliveryError::TicketRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            DeliveryError::NoSnapshot | DeliveryError::UnknownTopic => StatusCode::NOT_FOUND,
            DeliveryError::AtCapacity { .. } | DeliveryError::ShuttingDown | DeliveryError::Backend(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Seconds for `Retry-After`, for the errors that carry one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            DeliveryError::TooManyTopics { retry_after_secs, .. }
            | DeliveryError::TooManyStreams { retry_after_secs }
            | DeliveryError::RateLimited { retry_after_secs }
            | DeliveryError::TicketRateLimited { retry_after_secs }
            | DeliveryError::AtCapacity { retry_after_secs } => Some((*retry_after_secs).max(1)),
            DeliveryError::ShuttingDown | DeliveryError::Backend(_) => Some(1),
            _ => None,
        }
    }

    /// The message sent to clients: never backend details.
    fn public_message(&self) -> String {
        match self {
            DeliveryError::Backend(_) => "a delivery backend is unavailable".to_owned(),
            DeliveryError::Auth(AuthError::Config(_)) => "authentication is unavailable".to_owned(),
            other => other.to_string(),
        }
    }
}

/// The JSON error body of the contract.
pub(crate) fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

impl IntoResponse for DeliveryError {
    fn into_response(self) -> Response {
        if let DeliveryError::Backend(detail) = &self {
            tracing::warn!(%detail, "delivery backend failed");
        }
        let body = error_body(self.code(), &self.public_message());
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_carry_retry_after_and_429() {
        let error = DeliveryError::RateLimited { retry_after_secs: 0 };
        assert_eq!(error.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.retry_after_secs(), Some(1));
        let response = error.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn backend_detail_is_not_sent() {
        let error = DeliveryError::Backend("redis at 10.0.0.3 refused".into());
        assert!(!error.public_message().contains("10.0.0.3"));
    }
}
