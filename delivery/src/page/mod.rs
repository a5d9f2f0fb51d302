//! The demo page and the server-rendered pages.

use std::sync::Arc;

use axum::Router;

use crate::delivery::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().with_state(shared)
}
