//! Limits (each `429` with `Retry-After` and a JSON error), tickets, slow clients and polling over real TCP.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use social_delivery::DeliveryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn topics_per_stream_limit() {
    let config = DeliveryConfig {
        max_topics_per_stream: 2,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let ok = Sse::connect(
        &server.url("/v1/stream?topic=trending.1h&topic=trending.24h"),
        &[],
    )
    .await;
    assert_eq!(ok.status, 200);
    let refused = Sse::connect(
        &server.url("/v1/stream?topic=trending.1h&topic=trending.24h&topic=leaderboard.daily"),
        &[],
    )
    .await;
    assert_limited(refused, "too_many_topics").await;
    // Repeats past the bound refuse the request rather than dropping the name that follows them.
    let repeated = "topic=trending.1h&".repeat(65);
    let refused = Sse::connect(
        &server.url(&format!("/v1/stream?{repeated}topic=trending.24h")),
        &[],
    )
    .await;
    assert_limited(refused, "too_many_topics").await;
    server.stop().await;
}

/// Anonymous streams count per client address: the TCP peer, or what a trusted proxy says in `X-Forwarded-For`.
async fn anonymous_streams_per_address(server: &TestServer) {
    let url = server.url("/v1/stream?topic=leaderboard.daily");
    let from = |address: &'static str| [("x-forwarded-for", address)];
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut sse = Sse::connect(&url, &from("198.51.100.1")).await;
        assert_eq!(sse.status, 200);
        sse.next_frame().await.unwrap();
        held.push(sse);
    }
    assert_limited(
        Sse::connect(&url, &from("198.51.100.1")).await,
        "too_many_streams",
    )
    .await;
    // The same limit on the router's polling route.
    let poll = client()
        .get(server.url("/v1/poll?topic=leaderboard.daily&wait=0"))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), 429);
    // Another client behind the same proxy has its own budget.
    let other = Sse::connect(&url, &from("198.51.100.2")).await;
    assert_eq!(other.status, 200);
    // A client with a token counts as its user, not its address.
    let auth = format!("Bearer {}", token("u1", &[], &[]));
    let user = Sse::connect(
        &url,
        &[("authorization", &auth), ("x-forwarded-for", "198.51.100.1")],
    )
    .await;
    assert_eq!(user.status, 200);
}

#[tokio::test]
async fn anonymous_streams_per_address_limit_behind_a_trusted_proxy() {
    let config = DeliveryConfig {
        max_anonymous_streams_per_address: 2,
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config.clone()).await;
    anonymous_streams_per_address(&server).await;
    server.stop().await;
    let server = TestServer::start_router_only(config).await;
    anonymous_streams_per_address(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn behind_a_proxy_that_writes_forwarded_its_for_parameter_names_the_client() {
    let config = DeliveryConfig {
        max_anonymous_streams_per_address: 2,
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        forwarded_header: social_delivery::ForwardedHeader::Forwarded,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let url = server.url("/v1/stream?topic=leaderboard.daily");
    let from = |element: &'static str| [("forwarded", element)];
    let mut held = Vec::new();
    for element in ["for=198.51.100.1;proto=https", "for=\"198.51.100.1:4711\""] {
        let mut sse = Sse::connect(&url, &from(element)).await;
        assert_eq!(sse.status, 200);
        sse.next_frame().await.unwrap();
        held.push(sse);
    }
    assert_limited(
        Sse::connect(&url, &from("for=198.51.100.1")).await,
        "too_many_streams",
    )
    .await;
    let mut other = Sse::connect(&url, &from("for=\"[2001:db8::1]:443\"")).await;
    assert_eq!(other.status, 200, "another client behind the same proxy");
    other.next_frame().await.unwrap();
    // `X-Forwarded-For` is not read: these are the proxy's own streams, whatever they claim.
    for address in ["198.51.100.7", "198.51.100.8"] {
        let mut sse = Sse::connect(&url, &[("x-forwarded-for", address)]).await;
        assert_eq!(sse.status, 200);
        sse.next_frame().await.unwrap();
        held.push(sse);
    }
    assert_limited(
        Sse::connect(&url, &[("x-forwarded-for", "198.51.100.9")]).await,
        "too_many_streams",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let config = DeliveryConfig {
        max_anonymous_streams_per_address: 2,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let url = server.url("/v1/stream?topic=leaderboard.daily");
    let mut held = Vec::new();
    for address in ["198.51.100.1", "198.51.100.2"] {
        let mut sse = Sse::connect(&url, &[("x-forwarded-for", address)]).await;
        assert_eq!(sse.status, 200);
        sse.next_frame().await.unwrap();
        held.push(sse);
    }
    // Both came from 127.0.0.1, whatever they claimed.
    let refused = Sse::connect(&url, &[("x-forwarded-for", "198.51.100.3")]).await;
    assert_limited(refused, "too_many_streams").await;
    server.stop().await;
}

#[tokio::test]
async fn concurrent_streams_per_user_limit() {
    let config = DeliveryConfig {
        max_streams_per_user: 2,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let auth = format!("Bearer {}", token("u1", &[], &[]));
    let url = server.url("/v1/stream?topic=user.u1.social");
    let mut first = Sse::connect(&url, &[("authorization", &auth)]).await;
    first.next_frame().await.unwrap();
    let mut second = Sse::connect(&url, &[("authorization", &auth)]).await;
    second.next_frame().await.unwrap();
    assert_limited(
        Sse::connect(&url, &[("authorization", &auth)]).await,
        "too_many_streams",
    )
    .await;
    let other = format!("Bearer {}", token("u2", &[], &[]));
    let ok = Sse::connect(
        &server.url("/v1/stream?topic=user.u2.social"),
        &[("authorization", &other)],
    )
    .await;
    assert_eq!(ok.status, 200);
    drop(first);
    // The slot frees once the server sees the close.
    let mut admitted = false;
    for _ in 0..100 {
        let again = Sse::connect(&url, &[("authorization", &auth)]).await;
        if again.status == 200 {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted);
    server.stop().await;
}

#[tokio::test]
async fn new_streams_per_minute_limit() {
    let config = DeliveryConfig {
        max_new_streams_per_user_per_minute: 3,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let auth = format!("Bearer {}", token("u1", &[], &[]));
    let url = server.url("/v1/stream?topic=user.u1.social");
    for _ in 0..3 {
        let sse = Sse::connect(&url, &[("authorization", &auth)]).await;
        assert_eq!(sse.status, 200);
    }
    assert_limited(
        Sse::connect(&url, &[("authorization", &auth)]).await,
        "stream_rate_limited",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn tickets_per_minute_limit() {
    let config = DeliveryConfig {
        max_new_streams_per_user_per_minute: 3,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let u1 = token("u1", &[], &[]);
    for _ in 0..3 {
        assert_eq!(ticket(&server, Some(&u1)).await.status(), 201);
    }
    assert_ticket_rate_limited(ticket(&server, Some(&u1)).await).await;
    // Another user is not affected.
    assert_eq!(ticket(&server, Some(&token("u2", &[], &[]))).await.status(), 201);
    server.stop().await;
}

async fn ticket(server: &TestServer, bearer: Option<&str>) -> reqwest::Response {
    let mut request = client().post(server.url("/v1/tickets"));
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_ticket_works_once() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    assert_eq!(ticket(&server, None).await.status().as_u16(), 401);
    let response = ticket(&server, Some(&token("u1", &[], &[]))).await;
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expiresInSecs"], 60);
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    let url = server.url(&format!("/v1/stream?topic=user.u1.referrals&ticket={ticket}"));
    let mut sse = Sse::connect(&url, &[]).await;
    assert_eq!(sse.status, 200);
    server.publish("user.u1.referrals", "r1").await;
    assert_eq!(key(&sse.next_message().await.unwrap()).1, "r1");
    let again = Sse::connect(&url, &[]).await;
    assert_eq!(again.status, 401);
    assert_eq!(again.error_json().await["error"]["code"], "invalid_ticket");
    // A ticket carries its user's rights only.
    let other: Value = ticket_json(&server, &token("u2", &[], &[])).await;
    let url = server.url(&format!(
        "/v1/stream?topic=user.u1.referrals&ticket={}",
        other["ticket"].as_str().unwrap()
    ));
    assert_eq!(Sse::connect(&url, &[]).await.status, 403);
    server.stop().await;
}

async fn ticket_json(server: &TestServer, bearer: &str) -> Value {
    ticket(server, Some(bearer)).await.json().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_ticket_expires_after_60_seconds() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let body = ticket_json(&server, &token("u1", &[], &[])).await;
    tokio::time::advance(Duration::from_secs(61)).await;
    let url = server.url(&format!(
        "/v1/stream?topic=user.u1.referrals&ticket={}",
        body["ticket"].as_str().unwrap()
    ));
    let sse = Sse::connect(&url, &[]).await;
    assert_eq!(sse.status, 401);
    assert_eq!(sse.error_json().await["error"]["code"], "invalid_ticket");
    server.stop().await;
}

#[tokio::test]
async fn a_slow_client_is_cut_off_with_a_resumable_position_and_others_are_unaffected() {
    let config = DeliveryConfig {
        connection_queue: 8,
        history_max_bytes_per_topic: 64 << 20,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    let path = "/v1/stream?topic=leaderboard.daily";

    // The slow client: a raw socket that sends its request and then reads nothing.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut fast = Sse::connect(&server.url(path), &[]).await;
    fast.next_frame().await.unwrap();
    while server.delivery.hub().subscriber_count("leaderboard.daily") < 2 {
        tokio::task::yield_now().await;
    }

    let padding = "x".repeat(16 * 1024);
    let total = 400;
    let mut received = 0;
    for i in 0..total {
        server
            .publish_data("leaderboard.daily", &format!("m-{i}"), json!({"pad": padding}))
            .await;
        // The fast client keeps up.
        let message = fast.next_message().await.unwrap();
        assert_eq!(key(&message).1, format!("m-{i}"));
        received += 1;
    }
    assert_eq!(received, total);
    assert_eq!(
        server.delivery.hub().subscriber_count("leaderboard.daily"),
        1,
        "the slow client was cut off"
    );

    // The slow client's stream ended; what it got carries a resumable position.
    // Read until the end of the chunked body (the connection itself may stay open for keep-alive).
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = vec![0u8; 1 << 16];
        while !raw.ends_with(b"\r\n0\r\n\r\n") {
            let n = slow.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the body ended");
            raw.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&raw);
    let last_id = text
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .next_back()
        .unwrap()
        .to_owned();
    let delivered = text.matches("\"type\":\"EVENT\"").count();
    assert!(delivered < total);
    let mut resumed = Sse::connect(&server.url(path), &[("last-event-id", &last_id)]).await;
    // What the slow client got is the first `delivered` messages, in order; the resume brings exactly the rest,
    // with no RESET (history covers the gap).
    let got_before: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .filter(|message| message["type"] == "EVENT")
        .map(|message| key(&message).1)
        .collect();
    let first: Vec<String> = (0..delivered).map(|i| format!("m-{i}")).collect();
    assert_eq!(got_before, first);
    let rest = resumed.messages(total - delivered).await;
    assert!(rest.iter().all(|m| m["type"] == "EVENT"), "no RESET expected");
    let rest: Vec<String> = rest.iter().map(|m| key(m).1).collect();
    let expected: Vec<String> = (delivered..total).map(|i| format!("m-{i}")).collect();
    assert_eq!(rest, expected, "exactly the rest, in order");
    server.stop().await;
}

#[tokio::test]
async fn polling_returns_the_same_messages_and_tokens_as_the_stream() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let topics = "topic=leaderboard.daily&topic=trending.1h";
    let mut sse = Sse::connect(&server.url(&format!("/v1/stream?{topics}")), &[]).await;
    let start = sse.next_frame().await.unwrap().id.unwrap();
    for i in 0..6 {
        let topic = if i % 2 == 0 {
            "leaderboard.daily"
        } else {
            "trending.1h"
        };
        server.publish(topic, &format!("p-{i}")).await;
    }
    let mut streamed = Vec::new();
    let mut stream_ids = Vec::new();
    for _ in 0..6 {
        streamed.push(sse.next_message().await.unwrap());
        stream_ids.push(sse.last_id.clone().unwrap());
    }
    let poll: Value = client()
        .get(server.url(&format!("/v1/poll?{topics}&lastEventId={start}&wait=0")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(poll["messages"].as_array().unwrap(), &streamed);
    assert_eq!(poll["lastEventId"], stream_ids[5].as_str());

    // A poll with nothing new waits, then answers with what arrives.
    let url = server.url(&format!(
        "/v1/poll?{topics}&lastEventId={}&wait=10",
        stream_ids[5]
    ));
    let waiting = tokio::spawn(async move {
        client()
            .get(url)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    while server.delivery.hub().subscriber_count("trending.1h") < 2 {
        tokio::task::yield_now().await;
    }
    server.publish("trending.1h", "late").await;
    let streamed_late = sse.next_message().await.unwrap();
    let answer = waiting.await.unwrap();
    assert_eq!(answer["messages"][0], streamed_late);
    assert_eq!(answer["lastEventId"], sse.last_id.clone().unwrap().as_str());
    server.stop().await;
}

#[tokio::test]
async fn a_ticket_is_spent_by_a_request_refused_for_another_reason() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let u1 = token("u1", &[], &[]);
    for refused_query in [
        "topic=user.u1.referrals&history=many",
        "topic=user..social",
        "topic=nosuch.kind",
    ] {
        let body = ticket_json(&server, &u1).await;
        let ticket = body["ticket"].as_str().unwrap();
        let refused = Sse::connect(
            &server.url(&format!("/v1/stream?{refused_query}&ticket={ticket}")),
            &[],
        )
        .await;
        assert!(
            (400..500).contains(&refused.status) && refused.status != 401,
            "{refused_query}: {}",
            refused.status
        );
        let url = server.url(&format!("/v1/stream?topic=user.u1.referrals&ticket={ticket}"));
        let again = Sse::connect(&url, &[]).await;
        assert_eq!(again.status, 401, "{refused_query}: the ticket was spent");
        assert_eq!(again.error_json().await["error"]["code"], "invalid_ticket");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_long_poll_ends_when_its_token_expires() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let short = token_ttl("u1", &[], &[], Duration::from_secs(2));
    let started = std::time::Instant::now();
    let poll: Value = client()
        .get(server.url("/v1/poll?topic=user.u1.social&wait=25"))
        .header("authorization", format!("Bearer {short}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "waited {waited:?} past the token's expiry"
    );
    assert_eq!(poll["messages"], json!([]));

    // Past its `exp`, within the verifier's leeway: refused, not answered at once with nothing (a client would
    // poll in a loop without ever being told to refresh its token).
    let stale = minter()
        .mint("u1", &[], &[], Duration::from_secs(10), now_unix() - 15)
        .unwrap();
    let response = client()
        .get(server.url("/v1/poll?topic=user.u1.social&wait=25"))
        .header("authorization", format!("Bearer {stale}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_expired", "{body}");
    server.stop().await;
}
