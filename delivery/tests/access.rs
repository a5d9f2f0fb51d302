//! The access matrix of CONTRACT section 3 over real TCP: every topic kind x every kind of caller, for the stream,
//! the poll and the snapshot routes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use social_delivery::DeliveryConfig;

#[derive(Clone, Copy, Debug)]
enum Caller {
    NoToken,
    Owner,
    OtherUser,
    ProgramMember,
    NonMember,
    Admin,
    Expired,
    BadSignature,
}

const CALLERS: [Caller; 8] = [
    Caller::NoToken,
    Caller::Owner,
    Caller::OtherUser,
    Caller::ProgramMember,
    Caller::NonMember,
    Caller::Admin,
    Caller::Expired,
    Caller::BadSignature,
];

fn authorization(caller: Caller) -> Option<String> {
    let token = match caller {
        Caller::NoToken => return None,
        // The owner of `user.u1.*`; not a member of program p1.
        Caller::Owner => token("u1", &[], &[]),
        Caller::OtherUser => token("u2", &[], &[]),
        Caller::ProgramMember => token("u3", &["p1"], &[]),
        Caller::NonMember => token("u4", &["p2"], &[]),
        Caller::Admin => token("root", &[], &["admin"]),
        Caller::Expired => expired_token("u1"),
        Caller::BadSignature => bad_signature_token("u1"),
    };
    Some(format!("Bearer {token}"))
}

/// The documented answer: public topics are open to anyone with no or a valid token; an invalid token is `401`;
/// a private topic is `401` without a token and `403` for a caller the rule excludes.
fn expected(topic: &str, caller: Caller) -> (u16, Option<&'static str>) {
    let public =
        topic.starts_with("leaderboard.") || topic.starts_with("trending.") || topic == "testimonials.recent";
    match caller {
        Caller::Expired => return (401, Some("token_expired")),
        Caller::BadSignature => return (401, Some("invalid_signature")),
        Caller::Admin => return (200, None),
        _ => {}
    }
    if public {
        return (200, None);
    }
    if let Caller::NoToken = caller {
        return (401, Some("missing_token"));
    }
    let allowed = if topic.starts_with("user.") {
        matches!(caller, Caller::Owner)
    } else {
        matches!(caller, Caller::ProgramMember)
    };
    if allowed {
        (200, None)
    } else {
        (403, Some("forbidden_topic"))
    }
}

const TOPICS: [&str; 7] = [
    "user.u1.social",
    "user.u1.referrals",
    "user.u1.network",
    "program.p1.updates",
    "leaderboard.weekly",
    "trending.1h",
    "testimonials.recent",
];

#[tokio::test]
async fn access_matrix_for_stream_poll_and_snapshot() {
    let config = DeliveryConfig {
        max_new_streams_per_user_per_minute: 1_000,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    for topic in TOPICS {
        server.snapshots.set(topic, json!({"state": topic}));
    }
    let http = client();
    for topic in TOPICS {
        for caller in CALLERS {
            let (status, code) = expected(topic, caller);
            let auth = authorization(caller);
            let mut headers = Vec::new();
            if let Some(auth) = auth.as_deref() {
                headers.push(("authorization", auth));
            }

            let sse = Sse::connect(&server.url(&format!("/v1/stream?topic={topic}")), &headers).await;
            assert_eq!(sse.status, status, "stream {topic} {caller:?}");
            if let Some(code) = code {
                assert_eq!(
                    sse.error_json().await["error"]["code"],
                    code,
                    "stream {topic} {caller:?}"
                );
            } else {
                assert_eq!(sse.headers["content-type"], "text/event-stream");
            }

            let mut poll = http.get(server.url(&format!("/v1/poll?topic={topic}&wait=0")));
            let mut snapshot = http.get(server.url(&format!("/v1/topics/{topic}/snapshot")));
            if let Some(auth) = auth.as_deref() {
                poll = poll.header("authorization", auth);
                snapshot = snapshot.header("authorization", auth);
            }
            for (route, request) in [("poll", poll), ("snapshot", snapshot)] {
                let response = request.send().await.unwrap();
                assert_eq!(response.status().as_u16(), status, "{route} {topic} {caller:?}");
                if route == "snapshot" && code.is_none() {
                    let public = topic.starts_with("leaderboard.")
                        || topic.starts_with("trending.")
                        || topic == "testimonials.recent";
                    let cache_control = if public { "no-cache" } else { "private, no-store" };
                    assert_eq!(response.headers()["cache-control"], cache_control, "{topic}");
                }
                let body: serde_json::Value = response.json().await.unwrap();
                match code {
                    Some(code) => assert_eq!(body["error"]["code"], code, "{route} {topic} {caller:?}"),
                    None if route == "snapshot" => assert_eq!(body["data"]["state"], topic),
                    None => assert!(body["messages"].is_array()),
                }
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_topics_and_missing_topics_are_400() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    for path in [
        "/v1/stream?topic=user.u1.other",
        "/v1/stream",
        "/v1/topics/nope/snapshot",
        "/v1/poll?topic=x",
    ] {
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"]["code"].as_str().unwrap().contains("topic"),
            "{path}: {body}"
        );
    }
    server.stop().await;
}

/// The demo routes answer bad requests with the JSON error too, not axum's plain-text rejections.
#[tokio::test]
async fn demo_routes_answer_bad_requests_with_json_errors() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let cases = [
        // The test server signs demo sessions.
        ("POST", "/demo/session", 400, "invalid_parameter"),
        ("POST", "/demo/session?user=%FF", 400, "invalid_parameter"),
        ("POST", "/demo/session?user=a%20b", 400, "invalid_parameter"),
        ("GET", "/demo/leaderboard/%FF", 400, "invalid_topic"),
        ("GET", "/demo/trending/%FF%FE", 400, "invalid_topic"),
    ];
    for (method, path, status, code) in cases {
        let request = match method {
            "POST" => client().post(server.url(path)),
            _ => client().get(server.url(path)),
        };
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn cookie_authenticates_a_stream() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let cookie = format!("other=1; social_token={}", token("u1", &[], &[]));
    let sse = Sse::connect(
        &server.url("/v1/stream?topic=user.u1.network"),
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(sse.status, 200);
    // A cookie the page cannot clear: invalid, it is refused for a private topic, and ignored where every topic is
    // public (a stale login must not lock a browser out of what anyone may read).
    for bad in [bad_signature_token("u1"), expired_token("u1")] {
        let bad = format!("social_token={bad}");
        let sse = Sse::connect(
            &server.url("/v1/stream?topic=leaderboard.daily&topic=user.u1.network"),
            &[("cookie", &bad)],
        )
        .await;
        assert_eq!(sse.status, 401);
        let sse = Sse::connect(
            &server.url("/v1/stream?topic=leaderboard.daily"),
            &[("cookie", &bad)],
        )
        .await;
        assert_eq!(sse.status, 200);
        let poll = Sse::connect(
            &server.url("/v1/poll?topic=trending.1h&wait=0"),
            &[("cookie", &bad)],
        )
        .await;
        assert_eq!(poll.status, 200);
    }
    // Past its `exp` but within the leeway: the same on public topics, and the stream stays open (it would
    // otherwise end at once, at the token's expiry, and the page reconnect in a loop).
    let stale = format!(
        "social_token={}",
        minter()
            .mint("u1", &[], &[], Duration::from_secs(60), now_unix() - 70)
            .unwrap()
    );
    let poll = Sse::connect(
        &server.url("/v1/poll?topic=trending.1h&wait=0"),
        &[("cookie", &stale)],
    )
    .await;
    assert_eq!(poll.status, 200);
    let mut sse = Sse::connect(
        &server.url("/v1/stream?topic=leaderboard.daily"),
        &[("cookie", &stale)],
    )
    .await;
    assert_eq!(sse.status, 200);
    sse.next_frame().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    server.publish("leaderboard.daily", "after-expiry").await;
    assert_eq!(key(&sse.next_message().await.unwrap()).1, "after-expiry");
    let sse = Sse::connect(
        &server.url("/v1/stream?topic=leaderboard.daily&topic=user.u1.network"),
        &[("cookie", &stale)],
    )
    .await;
    assert_eq!(
        sse.status, 200,
        "a private topic still takes it, and the stream ends at its expiry"
    );
    // A bearer header the client chose to send is checked whatever the topics.
    let bearer = format!("Bearer {}", bad_signature_token("u1"));
    let sse = Sse::connect(
        &server.url("/v1/stream?topic=leaderboard.daily"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(sse.status, 401);
    server.stop().await;
}

#[tokio::test]
async fn public_topics_outside_the_configured_list_are_unknown() {
    let config = DeliveryConfig {
        public_topics: Some(vec!["leaderboard.daily".into(), "trending.1h".into()]),
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    for path in [
        "/v1/stream?topic=leaderboard.daily&topic=leaderboard.made-up",
        "/v1/stream?topic=trending.7y",
        "/v1/poll?topic=trending.7y",
    ] {
        let refused = Sse::connect(&server.url(path), &[]).await;
        assert_eq!(refused.status, 404, "{path}");
        assert_eq!(
            refused.error_json().await["error"]["code"],
            "unknown_topic",
            "{path}"
        );
    }
    let snapshot = client()
        .get(server.url("/v1/topics/leaderboard.made-up/snapshot"))
        .send()
        .await
        .unwrap();
    assert_eq!(snapshot.status(), 404);
    let body: serde_json::Value = snapshot.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_topic");
    // Listed public topics and every other kind are served as before.
    let mut listed = Sse::connect(
        &server.url("/v1/stream?topic=leaderboard.daily&topic=trending.1h"),
        &[],
    )
    .await;
    assert_eq!(listed.status, 200);
    assert!(listed.next_frame().await.is_some());
    let auth = format!("Bearer {}", token("u1", &[], &[]));
    let own = Sse::connect(
        &server.url("/v1/stream?topic=user.u1.social"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(own.status, 200);
    server.stop().await;
}

/// Access is checked on replay as on subscribe: a resume token of the owner's stream opens nothing for another
/// caller, and a token's positions of topics the request does not name replay nothing.
#[tokio::test]
async fn resuming_with_another_users_token_is_refused() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let owner = format!("Bearer {}", token("u1", &[], &[]));
    let other = format!("Bearer {}", token("u2", &[], &[]));
    let private = "user.u1.referrals";
    let mut sse = Sse::connect(
        &server.url(&format!("/v1/stream?topic={private}&topic=leaderboard.weekly")),
        &[("authorization", &owner)],
    )
    .await;
    assert_eq!(sse.status, 200);
    server.publish(private, "m1").await;
    assert_eq!(sse.next_message().await.unwrap()["id"], "m1");
    let resume = sse.last_id.clone().expect("a resume token");
    sse.close();
    // Missed by the owner: a resume would replay it to whoever passed the check.
    server.publish(private, "secret").await;

    let stream_url = server.url(&format!("/v1/stream?topic={private}"));
    let refused = Sse::connect(
        &stream_url,
        &[("authorization", &other), ("last-event-id", &resume)],
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.error_json().await["error"]["code"], "forbidden_topic");
    let anonymous = Sse::connect(&stream_url, &[("last-event-id", &resume)]).await;
    assert_eq!(anonymous.status, 401);
    let poll = client()
        .get(server.url(&format!("/v1/poll?topic={private}&wait=0&lastEventId={resume}")))
        .header("authorization", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status().as_u16(), 403);
    let body = poll.text().await.unwrap();
    assert!(!body.contains("secret"), "{body}");

    // The same token on a public topic only: nothing of the private topic comes back.
    server.publish("leaderboard.weekly", "public").await;
    let mut public = Sse::connect(
        &server.url("/v1/stream?topic=leaderboard.weekly"),
        &[("authorization", &other), ("last-event-id", &resume)],
    )
    .await;
    assert_eq!(public.status, 200);
    server.publish("leaderboard.weekly", "public-2").await;
    let ids: Vec<String> = public.messages(2).await.iter().map(|m| key(m).1).collect();
    assert_eq!(ids, ["public", "public-2"], "only the public topic's messages");
    public.close();

    // The owner resumes and gets what was missed.
    let mut resumed = Sse::connect(
        &stream_url,
        &[("authorization", &owner), ("last-event-id", &resume)],
    )
    .await;
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.next_message().await.unwrap()["id"], "secret");
    server.stop().await;
}
