//! The delivery tier's options reach the binary (CONTRACT section 4: heartbeat and limits are configurable), and a
//! user whose id holds dots gets their own topics end to end.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;

fn stream_url(server: &BinaryServer, topics: &[&str]) -> String {
    let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
    server.url(&format!("/v1/stream?{}", query.join("&")))
}

async fn open(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The status, `Retry-After` and error code of a refused request (a stream that opened fails the test).
async fn error_code(response: reqwest::Response) -> (u16, Option<String>, String) {
    let status = response.status().as_u16();
    assert_ne!(status, 200, "the request was not refused");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        retry_after,
        body["error"]["code"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Reads `response` until `wanted` appears in its text, or `timeout`; returns the text read.
async fn read_until(response: reqwest::Response, wanted: &str, timeout: Duration) -> String {
    let mut bytes = response.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + timeout;
    while !text.contains(wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, bytes.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    text
}

#[tokio::test]
async fn heartbeat_and_stream_limits_are_taken_from_the_command_line() {
    let server = BinaryServer::start(&[
        "run",
        "--heartbeat-secs",
        "1",
        "--max-topics-per-stream",
        "1",
        "--max-streams-per-user",
        "1",
    ]);
    let (status, retry_after, code) =
        error_code(open(&stream_url(&server, &["trending.1h", "leaderboard.daily"]), None).await).await;
    assert_eq!((status, code.as_str()), (429, "too_many_topics"));
    assert!(retry_after.is_some());

    // The default heartbeat is 30 s: one within 3 s is this option's.
    let started = Instant::now();
    let stream = open(&stream_url(&server, &["trending.1h"]), None).await;
    assert_eq!(stream.status().as_u16(), 200);
    let text = read_until(stream, ": heartbeat", Duration::from_secs(3)).await;
    assert!(
        text.contains(": heartbeat"),
        "no heartbeat after {:?}: {text:?}",
        started.elapsed()
    );

    let token = token("u1", &[]);
    let held = open(&stream_url(&server, &["user.u1.social"]), Some(&token)).await;
    assert_eq!(held.status().as_u16(), 200);
    let (status, retry_after, code) =
        error_code(open(&stream_url(&server, &["user.u1.referrals"]), Some(&token)).await).await;
    assert_eq!((status, code.as_str()), (429, "too_many_streams"));
    assert!(retry_after.is_some());
    drop(held);
}

#[tokio::test]
async fn out_of_range_options_are_refused_at_start() {
    for (flag, value) in [
        ("--heartbeat-secs", "0"),
        ("--heartbeat-secs", "100000000000"),
        ("--max-topics-per-stream", "256"),
        ("--max-connections", "0"),
        ("--history-max-messages-per-topic", "0"),
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_social-realtime"))
            .args(["run", flag, value, "--listen", "127.0.0.1:0"])
            .env("JWT_SECRET", SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A value taken would start the server: it must exit by itself, at once.
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{flag} {value} was accepted: the server started");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "{flag} {value} was accepted");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

#[tokio::test]
async fn a_user_whose_id_holds_dots_receives_their_counters() {
    let server = BinaryServer::start(&["run", "--idle-flush-ms", "500"]);
    let token = token("jane.doe", &[]);
    let mut stream = open(&stream_url(&server, &["user.jane.doe.referrals"]), Some(&token)).await;
    assert_eq!(stream.status().as_u16(), 200);
    // The stream is subscribed once its first chunk (the start position) has arrived.
    stream.chunk().await.unwrap();

    let code = serde_json::json!({
        "specversion": "1.0", "id": "dots-code", "source": "/services/referrals",
        "type": "referral.code.generated", "time": "2026-01-01T00:00:00Z",
        "data": {"codeId": "code-jane", "userId": "jane.doe", "programId": "program-standard"}
    });
    let click = serde_json::json!({
        "specversion": "1.0", "id": "dots-click", "source": "/services/web",
        "type": "referral.link.clicked", "time": "2026-01-01T00:00:01Z",
        "data": {"referralId": "code-jane", "sourceIp": "203.0.113.9", "userAgent": "Mozilla/5.0"}
    });
    for event in [code, click] {
        let (status, reply) = post(
            &server.url("/v1/events"),
            Some(&service_token()),
            "application/cloudevents+json",
            event.to_string(),
        )
        .await;
        assert_eq!(status, 202, "{reply}");
    }
    let text = read_until(stream, "referral.counters.updated", Duration::from_secs(20)).await;
    assert!(text.contains("referral.counters.updated"), "{text:?}");
    assert!(text.contains(r#""topic":"user.jane.doe.referrals""#), "{text:?}");
}
