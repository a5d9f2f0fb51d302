//! `delivery`: the delivery tier as its own process, any number of them behind one address. Everything it serves
//! comes through Redis from a separate `pipeline --redis-url`: topic history and live fan-out (so a client resumes
//! on any node), tickets, and the live state for `SNAPSHOT`s. With `--clickhouse-url`, the node's publish-to-write
//! latency goes to ClickHouse (`delivery_latency`, node `delivery`).

use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use social_analytics::{ClickHouseConfig, ClickHouseSink};
use social_auth::Verifier;
use social_delivery::redis::{RedisBackend, RedisConfig};
use social_delivery::{Delivery, DeliveryConfig};
use social_state::RedisSnapshots;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth_config;
use crate::cli::DeliveryArgs;
use crate::server;

pub(super) async fn delivery(args: DeliveryArgs) -> anyhow::Result<()> {
    let Some(url) = args.redis_url.clone() else {
        anyhow::bail!(
            "`delivery` as a separate process is fed through Redis: set --redis-url / REDIS_URL. \
             For one process with the embedded bus, use `social-realtime run`"
        );
    };
    let verifier = Arc::new(Verifier::new(&auth_config(&args.auth, false)?)?);
    let analytics = match &args.clickhouse_url {
        Some(url) => {
            let config = ClickHouseConfig {
                url: url.clone(),
                database: args.clickhouse_database.clone(),
                node: "delivery".to_owned(),
                ..ClickHouseConfig::default()
            };
            Some(Arc::new(
                ClickHouseSink::start(config).context("starting the ClickHouse sink")?,
            ))
        }
        None => None,
    };
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    // The operators' boards and windows: both processes run with the default operator configuration.
    let config = args.streams.apply(DeliveryConfig {
        public_topics: Some(social_pipeline::operator::OperatorConfig::default().public_topics()),
        ..DeliveryConfig::default()
    });
    let backend = RedisBackend::connect(
        RedisConfig::for_delivery(&url, &args.redis_prefix, &config),
        shutdown.clone(),
    )
    .await
    .context("connecting to Redis")?;
    let snapshots = RedisSnapshots::connect(&url, &args.redis_prefix)
        .await
        .context("connecting to Redis")?;
    let delivery = Delivery::builder(config, verifier)
        .history(backend.history())
        .fanout(backend.fanout())
        .tickets(backend.tickets())
        .stream_limits(backend.stream_limits())
        .snapshots(Arc::new(snapshots))
        .shutdown(shutdown.clone())
        .build();
    let backend = Arc::new(backend);
    let router =
        crate::server::fallback::with_json_fallbacks(delivery.router().merge(ops_router(backend.clone())));
    let tracker = TaskTracker::new();
    tracker.spawn(delivery.maintenance());
    if let Some(sink) = analytics
        && let Some(latency) = server::analytics::DeliveryLatency::install()
    {
        tracker.spawn(server::analytics::feed_delivery_latency(
            sink,
            latency,
            shutdown.clone(),
        ));
    }
    let listener = server::bind(args.listen).await?;
    let served = delivery.serve(listener, router).await.context("serving HTTP");
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    if tokio::time::timeout(std::time::Duration::from_secs(15), backend.stopped())
        .await
        .is_err()
    {
        tracing::warn!("the Redis backend's tasks did not stop within 15 s; exiting without them");
    }
    served
}

fn ops_router(backend: Arc<RedisBackend>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/readyz",
            get(move || {
                let backend = backend.clone();
                async move {
                    if backend.is_subscribed() && backend.ping().await.is_ok() {
                        Json(json!({"status": "ready"})).into_response()
                    } else {
                        let body = json!({"error": {"code": "not_ready", "message": "Redis is unreachable"}});
                        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
                    }
                }
            }),
        )
        .route("/metrics", get(crate::server::ops::metrics))
}
