//! The demo page (`/demo`: one HTML file with inline script and style, no build step, no external assets) and the
//! server-rendered pages without JavaScript (`/demo/leaderboard/{board}`, `/demo/trending/{window}`), the spec's
//! progressive enhancement. `POST /demo/session?user=...` exists only when a demo minter is configured.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;

use crate::DeliveryError;
use crate::auth::now_unix;
use crate::delivery::Shared;
use crate::error::error_body;
use crate::topics::Topic;

mod render;

const DEMO_PROGRAM: &str = "program-standard";
const DEMO_SESSION_TTL: Duration = Duration::from_secs(3600);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/demo", get(demo))
        .route("/demo/session", post(session))
        .route("/demo/leaderboard/{board}", get(leaderboard))
        .route("/demo/trending/{window}", get(trending))
        .with_state(shared)
}

async fn demo() -> Response {
    let mut response = Html(include_str!("demo.html")).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[derive(Deserialize)]
struct SessionQuery {
    user: String,
}

async fn session(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Response {
    let Some(minter) = &shared.demo_minter else {
        let body = error_body(
            "demo_disabled",
            "demo sessions are only available with `run --demo` and the public demo secret",
        );
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    };
    // A missing or undecodable `user` gets the JSON error, not axum's plain-text rejection; it must make valid
    // `user.{id}.*` topics.
    let Ok(Query(query)) = query else {
        return DeliveryError::InvalidParameter("user").into_response();
    };
    if Topic::parse(&format!("user.{}.social", query.user)).is_err() {
        return DeliveryError::InvalidParameter("user").into_response();
    }
    let token = match minter.mint(
        &query.user,
        &[],
        &[DEMO_PROGRAM.to_owned()],
        DEMO_SESSION_TTL,
        now_unix(),
    ) {
        Ok(token) => token,
        Err(error) => return DeliveryError::Auth(error).into_response(),
    };
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        shared.config.cookie_name,
        token,
        DEMO_SESSION_TTL.as_secs()
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn leaderboard(
    State(shared): State<Arc<Shared>>,
    board: Result<Path<String>, PathRejection>,
) -> Response {
    rendered(&shared, "leaderboard", board, render::Kind::Leaderboard).await
}

async fn trending(
    State(shared): State<Arc<Shared>>,
    window: Result<Path<String>, PathRejection>,
) -> Response {
    rendered(&shared, "trending", window, render::Kind::Trending).await
}

/// The page of topic `{prefix}.{name}`. A name that does not decode gets the JSON error, not axum's plain-text
/// rejection.
async fn rendered(
    shared: &Shared,
    prefix: &str,
    name: Result<Path<String>, PathRejection>,
    kind: render::Kind,
) -> Response {
    let Ok(Path(name)) = name else {
        return DeliveryError::InvalidTopic.into_response();
    };
    let Ok(topic) = Topic::parse(&format!("{prefix}.{name}")) else {
        return DeliveryError::InvalidTopic.into_response();
    };
    let state: Option<Value> = shared.snapshots.snapshot(topic.name()).await;
    let html = render::page(kind, topic.segment(), topic.name(), state.as_ref());
    let mut response = Html(html).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
        .headers_mut()
        .insert(header::REFRESH, HeaderValue::from_static("30"));
    response
}
