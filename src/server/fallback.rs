//! JSON answers for the paths and methods no route serves, so that every error answer has the body of CONTRACT
//! section 5 (`{"error":{"code":"...","message":"..."}}`), not an empty one.

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `router` answering `404 not_found` for an unknown path and `405 method_not_allowed` (with `Allow`) for a known
/// path asked with another method. Applied once, to the whole router of a process (merged routers may not both
/// have a fallback).
pub fn with_json_fallbacks(router: Router) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such path")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take this method",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}
