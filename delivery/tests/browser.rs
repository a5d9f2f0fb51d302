//! The demo page in headless Chromium: its EventSource receives live updates (leaderboard with rank arrows, trending,
//! the demo user's counters and notifications, all as text), and after the server restarts (a new history epoch) it
//! reconnects by itself, shows the RESET, then live updates again.
//!
//! Needs Debian's `chromium` (`apt-get install chromium`) and Node.js; `playwright-core` is installed into
//! `tests/browser/node_modules` with npm when missing. Skips, saying so, only when chromium is absent.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use social_delivery::DeliveryConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn chromium() -> Option<PathBuf> {
    let from_env = std::env::var_os("CHROMIUM_PATH").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from))
        .find(|path| path.exists())
}

/// Synthetic traffic in the operators' payload shapes: rank changes, trending lists, live counters, reward progress
/// and notifications for `user-1`, every 200 ms.
fn publish_until_stopped(server: &TestServer) {
    let publisher = server.publisher.clone();
    let stop = server.shutdown.clone();
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.is_cancelled() {
            let up = n.is_multiple_of(2);
            let (first, second) = if up {
                ("user-2", "user-1")
            } else {
                ("user-1", "user-2")
            };
            let messages = [
                (
                    "leaderboard.daily",
                    "referral.leaderboard.updated",
                    json!({"boardId": "daily", "changes": [
                        {"userId": first, "position": 1, "delta": 1},
                        {"userId": second, "position": 2, "delta": -1}]}),
                ),
                (
                    "trending.1h",
                    "social.trending.updated",
                    json!({"window": "1h", "items": [
                        {"contentId": "project-7", "contentType": "project", "rank": 1, "previousRank": 1, "count": 10 + n, "score": 1.0},
                        {"contentId": "<img src=x onerror=alert(1)>", "contentType": "profile", "rank": 2, "previousRank": null, "count": 3, "score": 0.5}]}),
                ),
                (
                    "user.user-1.referrals",
                    "referral.counters.updated",
                    json!({"userId": "user-1", "allTime": {"clicks": 40 + n, "flaggedClicks": 0, "conversionsStarted": 9,
                        "conversionsCompleted": 4, "rewards": 2, "rewardAmount": 125.0}, "windows": []}),
                ),
                (
                    "user.user-1.referrals",
                    "referral.reward.progress",
                    json!({"userId": "user-1", "programId": "program-standard", "completed": 4, "progress": 0.5,
                        "tier": {"level": 2, "threshold": 3, "rewardAmount": 100.0},
                        "nextTier": {"threshold": 5, "rewardAmount": 200.0, "remaining": 1}}),
                ),
                (
                    "user.user-1.social",
                    "notification.share.confirmed",
                    json!({"shareId": format!("share-{n}"), "contentType": "project", "contentId": "<b>project-7</b>",
                        "platform": "email", "shareFormat": "link", "status": "confirmed"}),
                ),
            ];
            for (i, (topic, event_type, data)) in messages.into_iter().enumerate() {
                let message = social_schemas::TopicMessage {
                    topic: topic.into(),
                    id: format!("{topic}-{n}-{i}"),
                    event_type: event_type.into(),
                    timestamp: chrono::Utc::now(),
                    data: data.into(),
                };
                let _ = publisher.publish(message).await;
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

async fn start(addr: Option<SocketAddr>) -> TestServer {
    let config = DeliveryConfig {
        retry_base_ms: 500,
        retry_jitter_ms: 500,
        ..DeliveryConfig::default()
    };
    let server = match addr {
        Some(addr) => TestServer::start_on(addr, config).await,
        None => TestServer::start(config).await,
    };
    server.snapshots.set(
        "leaderboard.daily",
        json!({"top": {"boardId": "daily", "periodStart": "2026-01-01", "top": [
            {"userId": "user-1", "position": 1, "completed": 4},
            {"userId": "user-2", "position": 2, "completed": 3}]}}),
    );
    publish_until_stopped(&server);
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_updates_live_and_resumes_after_a_restart() {
    let Some(chromium) = chromium() else {
        // CI sets REQUIRE_SERVICES: there a missing browser fails the test instead of skipping it.
        let required = std::env::var("REQUIRE_SERVICES").is_ok_and(|value| !value.is_empty() && value != "0");
        assert!(
            !required,
            "chromium not found and REQUIRE_SERVICES is set (run scripts/services.sh)"
        );
        eprintln!("SKIPPED: chromium not found (apt-get install chromium, or set CHROMIUM_PATH)");
        return;
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = std::process::Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg("playwright-core@1")
            .status()
            .expect("npm is needed to install playwright-core");
        assert!(status.success(), "npm install playwright-core failed");
    }

    let server = start(None).await;
    let addr = server.addr;
    let mut node = Command::new("node")
        .arg(dir.join("demo.cjs"))
        .arg(format!("http://{addr}"))
        .env("CHROMIUM_PATH", &chromium)
        .env("NODE_PATH", dir.join("node_modules"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is needed for the browser test");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("browser timed out")
            .unwrap()
    };

    let live = next_line().await.expect("the browser script ended early");
    assert!(live.starts_with("LIVE "), "{live}");
    eprintln!("{live}");
    let state: serde_json::Value = serde_json::from_str(&live[5..]).unwrap();
    assert!(
        state["userFeedItems"].as_u64().unwrap() > 0,
        "per-user notifications shown: {state}"
    );
    assert!(
        state["clicks"].as_u64().unwrap() >= 40,
        "live counters shown: {state}"
    );
    assert_eq!(state["boardRows"], 2, "leaderboard rows: {state}");
    assert!(
        state["arrows"].as_u64().unwrap() >= 1,
        "rank-change arrows: {state}"
    );
    assert_eq!(state["trendItems"], 2, "trending rows: {state}");
    assert_eq!(
        state["injected"], 0,
        "data is shown as text, never as markup: {state}"
    );

    server.stop().await;
    let server = start(Some(addr)).await;
    stdin.write_all(b"RESTARTED\n").await.unwrap();

    let resumed = next_line().await.expect("the browser script ended early");
    assert!(resumed.starts_with("RESUMED "), "{resumed}");
    eprintln!("{resumed}");
    let state: serde_json::Value = serde_json::from_str(&resumed[8..]).unwrap();
    assert!(
        state["resets"].as_u64().unwrap() >= 1 && state["opens"].as_u64().unwrap() >= 2,
        "{state}"
    );
    assert!(
        state["resetNotes"].as_u64().unwrap() >= 1,
        "the reset is shown: {state}"
    );
    assert!(
        state["clicks"].as_u64().unwrap() >= 40,
        "counters live again: {state}"
    );
    assert!(node.wait().await.unwrap().success());
    server.stop().await;
}
