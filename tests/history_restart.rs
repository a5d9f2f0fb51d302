//! `run --data-dir` without Redis keeps its delivery history across restarts (CONTRACT section 4: resumption works
//! across restarts of the delivery tier): a client resuming with a token from before gets exactly the messages it
//! missed, with no `RESET`, after a clean stop and after a SIGKILL.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::Value;

const TOPIC: &str = "user.sharer-1.social";

fn share(n: u32) -> String {
    serde_json::json!({
        "specversion": "1.0", "id": format!("restart-share-{n}"), "source": "/services/social-sharing",
        "type": "social.share.created", "time": "2026-01-01T00:00:00Z",
        "data": {"shareId": format!("share-{n}"), "userId": "sharer-1", "contentType": "project",
                 "contentId": format!("project-{n}"), "platform": "facebook", "shareFormat": "post"}
    })
    .to_string()
}

async fn post_share(server: &BinaryServer, n: u32) {
    let (status, reply) = post(
        &server.url("/v1/events"),
        Some(&service_token()),
        "application/cloudevents+json",
        share(n),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
}

/// One SSE message: its resume token and JSON.
struct Message {
    token: String,
    json: Value,
}

/// Reads the stream of `TOPIC` from `last_event_id` (without one: from the start of its history) until `count`
/// messages or `timeout`.
async fn read(
    server: &BinaryServer,
    last_event_id: Option<&str>,
    count: usize,
    timeout: Duration,
) -> Vec<Message> {
    let history = if last_event_id.is_none() {
        "&history=100"
    } else {
        ""
    };
    let mut request = reqwest::Client::new()
        .get(server.url(&format!("/v1/stream?topic={TOPIC}{history}")))
        .bearer_auth(token("sharer-1", &[]));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut bytes = response.bytes_stream();
    let mut frames = SseFrames::new(None);
    let mut messages = Vec::new();
    let deadline = Instant::now() + timeout;
    while messages.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(left, bytes.next()).await else {
            break;
        };
        messages.extend(
            frames
                .feed(&chunk)
                .into_iter()
                .map(|(token, json)| Message { token, json }),
        );
    }
    messages
}

/// The share ids the share confirmations of `messages` are about, and whether any message is not an `EVENT`.
fn shares(messages: &[Message]) -> (Vec<String>, bool) {
    let others = messages.iter().any(|m| m.json["type"] != "EVENT");
    let ids = messages
        .iter()
        .filter_map(|m| m.json["data"]["shareId"].as_str().map(str::to_owned))
        .collect();
    (ids, others)
}

async fn resumes_after(stop: fn(&mut BinaryServer)) {
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path().to_str().unwrap();
    let args = ["run", "--data-dir", dir, "--checkpoint-interval-ms", "600000"];
    let mut server = BinaryServer::start(&args);
    post_share(&server, 1).await;
    post_share(&server, 2).await;
    let before = read(&server, None, 2, Duration::from_secs(20)).await;
    assert_eq!(shares(&before), (vec!["share-1".into(), "share-2".into()], false));
    stop(&mut server);
    drop(server);

    let server = BinaryServer::start(&args);
    post_share(&server, 3).await;
    post_share(&server, 4).await;
    // From the token of the second message: exactly the two published since, then nothing more.
    let resumed = read(&server, Some(&before[1].token), 3, Duration::from_secs(5)).await;
    assert_eq!(
        shares(&resumed),
        (vec!["share-3".into(), "share-4".into()], false)
    );
    // From the first: the second again, then the new ones, once each.
    let resumed = read(&server, Some(&before[0].token), 4, Duration::from_secs(5)).await;
    assert_eq!(
        shares(&resumed),
        (vec!["share-2".into(), "share-3".into(), "share-4".into()], false)
    );
    assert_eq!(resumed[0].json["id"], before[1].json["id"]);
}

#[tokio::test]
async fn a_resume_token_survives_a_clean_restart() {
    resumes_after(BinaryServer::terminate).await;
}

#[tokio::test]
async fn a_resume_token_survives_a_sigkill() {
    resumes_after(BinaryServer::kill9).await;
}

/// A pipeline that starts over (no data directory) over the Redis history an earlier run left is a new lineage:
/// its outputs are published, not taken for a replay of the earlier run's (which numbered its outputs from the
/// same start) and dropped.
#[tokio::test]
async fn a_pipeline_starting_over_publishes_over_the_history_it_left() {
    let url = backends::redis_url();
    let prefix = backends::unique_prefix("lineage");
    let args = ["run", "--redis-url", &url, "--redis-prefix", &prefix];
    let mut server = BinaryServer::start(&args);
    post_share(&server, 1).await;
    post_share(&server, 2).await;
    let before = read(&server, None, 2, Duration::from_secs(20)).await;
    assert_eq!(shares(&before), (vec!["share-1".into(), "share-2".into()], false));
    server.terminate();
    drop(server);

    let server = BinaryServer::start(&args);
    post_share(&server, 3).await;
    let after = read(&server, Some(&before[1].token), 1, Duration::from_secs(20)).await;
    assert_eq!(shares(&after), (vec!["share-3".into()], false));
}
