//! The README's run command: `run --demo` starts, answers health checks, shows events flowing, and accepts every
//! fixture event from a service.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn demo_runs_and_accepts_fixtures() {
    let server = BinaryServer::start(&["run", "--demo", "--demo-rate", "1000"]);
    let (status, _) = get_json(&server.url("/healthz"), None).await;
    assert_eq!(status, 200);
    let (status, _) = get_json(&server.url("/readyz"), None).await;
    assert_eq!(status, 200);

    // The generator feeds the system: the accepted count grows.
    let mut accepted = 0;
    for _ in 0..100 {
        let (_, status) = get_json(&server.url("/v1/status"), None).await;
        accepted = status["ingest"]["accepted"].as_u64().unwrap();
        if accepted >= 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted >= 500, "demo generator produced only {accepted} events");

    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        let (status, reply) = post(
            &server.url("/v1/events"),
            Some(&service_token()),
            "application/cloudevents+json",
            body,
        )
        .await;
        assert_eq!(status, 202, "{}: {reply}", path.display());
    }

    let page = reqwest::get(server.url("/")).await.unwrap().text().await.unwrap();
    assert!(page.contains("EventSource"), "`/` serves the live demo page");
    let page = reqwest::get(server.url("/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/v1/status"));
    // With a real JWT secret (the test's), the demo page's sign-in as any user is off: it would sign tokens with
    // that secret for anyone.
    let refused = reqwest::Client::new()
        .post(server.url("/demo/session?user=u1"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 404);
    assert!(refused.headers().get("set-cookie").is_none());
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "demo_disabled", "{body}");

    // The operators turn the traffic into derived messages.
    let mut derived = 0;
    for _ in 0..100 {
        let (_, status) = get_json(&server.url("/v1/status"), None).await;
        derived = status["derivedTopic"]["total"].as_u64().unwrap();
        if derived > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(derived > 0, "no derived messages");
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ingest_events_total"), "{metrics}");
    assert!(metrics.contains("ingest_request_duration_seconds"), "{metrics}");
}
