//! Two delivery nodes in one process sharing one Redis, each serving real HTTP on port 0: live fan-out across
//! nodes, resumption on the other node (exactly the missed messages, then live), tickets across nodes, and a flushed
//! Redis answered with `RESET`.

#![allow(clippy::unwrap_used)]

mod common;
mod redis_support;

use std::collections::BTreeMap;

use common::{Sse, assert_limited, assert_ticket_rate_limited, client, key, token};
use redis_support::{Node, cleanup, keys_under, raw, redis_url, unique_prefix};
use serde_json::{Value, json};
use social_delivery::DeliveryConfig;

const TOPICS: [&str; 3] = ["user.u1.referrals", "leaderboard.daily", "trending.1h"];

fn stream_path(topics: &[&str], extra: &str) -> String {
    let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
    format!("/v1/stream?{}{}", query.join("&"), extra)
}

fn per_topic(messages: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in messages {
        let (topic, id) = key(message);
        map.entry(topic).or_default().push(id);
    }
    map
}

async fn two_nodes() -> (String, Node, Node) {
    two_nodes_with(DeliveryConfig::default()).await
}

/// Two nodes with `config` sharing the test Redis under a fresh prefix.
async fn two_nodes_with(config: DeliveryConfig) -> (String, Node, Node) {
    let prefix = unique_prefix();
    let url = redis_url();
    let node_1 = Node::start(&url, &prefix, config.clone()).await;
    let node_2 = Node::start(&url, &prefix, config).await;
    (prefix, node_1, node_2)
}

async fn finish(prefix: &str, nodes: [Node; 2]) {
    for node in nodes {
        node.stop().await;
    }
    cleanup(&redis_url(), prefix).await;
}

/// Inside `mod redis`, so that `cargo test -p social-delivery redis` selects these tests.
mod redis {
    use super::*;

    #[tokio::test]
    async fn live_messages_published_on_one_node_reach_streams_on_every_node() {
        let (prefix, node_1, node_2) = two_nodes().await;
        let path = stream_path(&TOPICS[1..], "");
        let mut on_2 = Sse::connect(&node_2.url(&path), &[]).await;
        let mut on_1 = Sse::connect(&node_1.url(&path), &[]).await;
        assert_eq!((on_1.status, on_2.status), (200, 200));
        on_2.next_frame().await.unwrap();
        on_1.next_frame().await.unwrap();

        let mut expected = Vec::new();
        for i in 0..20 {
            let topic = TOPICS[1 + i % 2];
            let id = format!("m-{i}");
            let node = if i % 3 == 0 { &node_2 } else { &node_1 };
            node.publish(topic, &id).await;
            expected.push(json!({"topic": topic, "id": id}));
        }
        let received_2 = on_2.messages(20).await;
        let received_1 = on_1.messages(20).await;
        assert_eq!(
            per_topic(&received_2),
            per_topic(&expected),
            "in order, none twice"
        );
        assert_eq!(per_topic(&received_1), per_topic(&expected));
        finish(&prefix, [node_1, node_2]).await;
    }

    #[tokio::test]
    async fn a_client_resumes_on_another_node_with_exactly_the_missed_messages_then_live() {
        let (prefix, node_1, node_2) = two_nodes().await;
        let auth = format!("Bearer {}", token("u1", &[], &[]));
        let path = stream_path(&TOPICS, "");

        let mut first = Sse::connect(&node_1.url(&path), &[("authorization", auth.as_str())]).await;
        assert_eq!(first.status, 200);
        first.next_frame().await.unwrap();
        for (i, topic) in TOPICS.iter().enumerate() {
            node_1.publish(topic, &format!("before-{i}")).await;
        }
        let seen = first.messages(3).await;
        assert_eq!(
            seen.iter().map(|m| key(m).1).collect::<Vec<_>>(),
            ["before-0", "before-1", "before-2"]
        );
        let last_id = first.last_id.clone().unwrap();
        first.close();

        let mut missed = Vec::new();
        for i in 0..12 {
            let topic = TOPICS[i % 3];
            let id = format!("missed-{i}");
            let node = if i % 2 == 0 { &node_1 } else { &node_2 };
            node.publish(topic, &id).await;
            missed.push(json!({"topic": topic, "id": id}));
        }

        let headers = [
            ("authorization", auth.as_str()),
            ("last-event-id", last_id.as_str()),
        ];
        let mut second = Sse::connect(&node_2.url(&path), &headers).await;
        assert_eq!(second.status, 200);
        let replayed = second.messages(12).await;
        assert_eq!(
            per_topic(&replayed),
            per_topic(&missed),
            "exactly the missed messages, in order"
        );
        assert!(replayed.iter().all(|m| m["type"] == "EVENT"));

        node_1.publish("trending.1h", "live-1").await;
        node_2.publish("user.u1.referrals", "live-2").await;
        let live = second.messages(2).await;
        assert_eq!(
            live.iter().map(|m| key(m).1).collect::<Vec<_>>(),
            ["live-1", "live-2"]
        );
        finish(&prefix, [node_1, node_2]).await;
    }

    #[tokio::test]
    async fn resuming_on_another_node_while_both_publish_loses_and_doubles_nothing() {
        let (prefix, node_1, node_2) = two_nodes().await;
        let path = stream_path(&TOPICS[1..], "");
        let mut first = Sse::connect(&node_1.url(&path), &[]).await;
        first.next_frame().await.unwrap();
        node_1.publish("leaderboard.daily", "m-0").await;
        assert_eq!(key(&first.next_message().await.unwrap()).1, "m-0");
        let last_id = first.last_id.clone().unwrap();
        first.close();

        let total = 300;
        let publish = |publisher: social_delivery::Publisher, parity: usize| async move {
            for i in (1..=total).filter(|i| i % 2 == parity) {
                let topic = if i % 4 < 2 {
                    "leaderboard.daily"
                } else {
                    "trending.1h"
                };
                publisher
                    .publish(social_schemas::TopicMessage {
                        topic: topic.into(),
                        id: format!("m-{i}"),
                        event_type: "test.event".into(),
                        timestamp: chrono::Utc::now(),
                        data: json!({}).into(),
                    })
                    .await
                    .unwrap();
            }
        };
        let from_1 = tokio::spawn(publish(node_1.publisher.clone(), 0));
        let from_2 = tokio::spawn(publish(node_2.publisher.clone(), 1));
        let mut second = Sse::connect(&node_2.url(&path), &[("last-event-id", last_id.as_str())]).await;
        let received = second.messages(total).await;
        from_1.await.unwrap();
        from_2.await.unwrap();

        let grouped = per_topic(&received);
        let mut ids: Vec<&String> = grouped.values().flatten().collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), total, "none lost, none twice");
        // Within a topic, each node's own messages keep the order in which that node published them.
        for messages in grouped.values() {
            for parity in 0..2 {
                let numbers: Vec<usize> = messages
                    .iter()
                    .map(|id| id.trim_start_matches("m-").parse().unwrap())
                    .filter(|n: &usize| n % 2 == parity)
                    .collect();
                assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
            }
        }
        finish(&prefix, [node_1, node_2]).await;
    }

    #[tokio::test]
    async fn a_ticket_issued_on_one_node_works_once_on_any_node() {
        let (prefix, node_1, node_2) = two_nodes().await;
        let response = client()
            .post(node_1.url("/v1/tickets"))
            .bearer_auth(token("u1", &[], &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let ticket = body["ticket"].as_str().unwrap().to_owned();
        assert!(body["expiresInSecs"].as_u64().unwrap() <= 60);
        assert!(
            keys_under(&redis_url(), &prefix)
                .await
                .contains(&format!("{prefix}ticket:{ticket}")),
            "the ticket is stored in redis"
        );

        let path = format!("/v1/stream?topic=user.u1.social&ticket={ticket}");
        let mut on_2 = Sse::connect(&node_2.url(&path), &[]).await;
        assert_eq!(on_2.status, 200, "accepted on the other node");
        on_2.next_frame().await.unwrap();
        let again_1 = Sse::connect(&node_1.url(&path), &[]).await;
        assert_eq!(again_1.status, 401, "single use");
        assert_eq!(again_1.error_json().await["error"]["code"], "invalid_ticket");
        let again_2 = Sse::connect(&node_2.url(&path), &[]).await;
        assert_eq!(again_2.status, 401);
        let forged = Sse::connect(&node_2.url("/v1/stream?topic=user.u1.social&ticket=nope"), &[]).await;
        assert_eq!(forged.status, 401);
        on_2.close();
        finish(&prefix, [node_1, node_2]).await;
    }

    /// Deletes every key of the run (as a flush or an eviction would).
    async fn delete_keys_under(prefix: &str) {
        let keys = keys_under(&redis_url(), prefix).await;
        let mut conn = raw(&redis_url()).await;
        let _: u64 = ::redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_flushed_redis_gives_reset_on_resume() {
        let (prefix, node_1, node_2) = two_nodes().await;
        let path = stream_path(&["trending.24h"], "");
        let mut first = Sse::connect(&node_1.url(&path), &[]).await;
        first.next_frame().await.unwrap();
        node_1.publish("trending.24h", "x").await;
        first.next_message().await.unwrap();
        let last_id = first.last_id.clone().unwrap();
        first.close();

        delete_keys_under(&prefix).await;

        let mut second = Sse::connect(&node_2.url(&path), &[("last-event-id", last_id.as_str())]).await;
        let reset = second.next_message().await.unwrap();
        assert_eq!(
            (reset["type"].as_str(), reset["data"]["reason"].as_str()),
            (Some("RESET"), Some("epoch_changed"))
        );
        node_1.publish("trending.24h", "after").await;
        assert_eq!(key(&second.next_message().await.unwrap()).1, "after");
        finish(&prefix, [node_1, node_2]).await;
    }

    #[tokio::test]
    async fn a_flushed_redis_while_connected_gives_reset_then_the_new_epochs_messages() {
        let (prefix, node_1, node_2) = two_nodes().await;
        let path = stream_path(&["trending.24h"], "");
        let mut live = Sse::connect(&node_2.url(&path), &[]).await;
        live.next_frame().await.unwrap();
        node_1.publish("trending.24h", "before").await;
        assert_eq!(key(&live.next_message().await.unwrap()).1, "before");

        delete_keys_under(&prefix).await;

        // The first message of the new epoch reaches the client after the RESET (the topic has no snapshot).
        node_1.publish("trending.24h", "first-of-new-epoch").await;
        let reset = live.next_message().await.unwrap();
        assert_eq!(
            (reset["type"].as_str(), reset["data"]["reason"].as_str()),
            (Some("RESET"), Some("epoch_changed"))
        );
        assert_eq!(key(&live.next_message().await.unwrap()).1, "first-of-new-epoch");
        node_1.publish("trending.24h", "next").await;
        assert_eq!(key(&live.next_message().await.unwrap()).1, "next");
        live.close();
        finish(&prefix, [node_1, node_2]).await;
    }

    #[tokio::test]
    async fn a_listener_that_loses_its_subscription_recovers_what_it_missed() {
        // A private server: killing its pub/sub clients must not disturb other tests.
        let server = redis_support::PrivateRedis::start().await;
        let prefix = unique_prefix();
        let node_1 = Node::start(&server.url(), &prefix, DeliveryConfig::default()).await;
        let node_2 = Node::start(&server.url(), &prefix, DeliveryConfig::default()).await;
        let path = stream_path(&["leaderboard.daily"], "");
        let mut on_2 = Sse::connect(&node_2.url(&path), &[]).await;
        on_2.next_frame().await.unwrap();
        node_1.publish("leaderboard.daily", "m-0").await;
        assert_eq!(key(&on_2.next_message().await.unwrap()).1, "m-0");
        // A stream of a topic that has had no message on this node: the listener holds no position of it.
        let quiet_path = stream_path(&["trending.24h"], "");
        let mut quiet = Sse::connect(&node_2.url(&quiet_path), &[]).await;
        quiet.next_frame().await.unwrap();

        let mut conn = raw(&server.url()).await;
        let killed: u64 = ::redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "pubsub"][..])
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(killed, 2, "both listeners were subscribed");
        // Published while the listeners reconnect: pub/sub loses these; the listener re-reads them from history.
        node_1.publish("trending.24h", "q-1").await;
        for i in 1..=5 {
            node_1.publish("leaderboard.daily", &format!("m-{i}")).await;
        }
        let received = on_2.messages(5).await;
        assert_eq!(
            received.iter().map(|m| key(m).1).collect::<Vec<_>>(),
            ["m-1", "m-2", "m-3", "m-4", "m-5"]
        );
        // The quiet topic's message arrives too, without waiting for the topic's next one.
        assert_eq!(key(&quiet.next_message().await.unwrap()).1, "q-1");
        assert!(
            node_2
                .backend
                .wait_subscribed(std::time::Duration::from_secs(5))
                .await
        );
        node_1.publish("leaderboard.daily", "m-6").await;
        assert_eq!(key(&on_2.next_message().await.unwrap()).1, "m-6");
        node_1.stop().await;
        node_2.stop().await;
    }

    fn bearer(user: &str) -> String {
        format!("Bearer {}", token(user, &[], &[]))
    }

    /// The user's open streams in Redis, every node's.
    async fn open_leases(prefix: &str, user: &str) -> u64 {
        let mut conn = raw(&redis_url()).await;
        ::redis::cmd("ZCARD")
            .arg(format!("{prefix}streams:{{user:{user}}}"))
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    /// Redis's clock in ms (lease expiries are in Redis time).
    async fn redis_time_ms(conn: &mut ::redis::aio::MultiplexedConnection) -> u64 {
        let (seconds, micros): (u64, u64) = ::redis::cmd("TIME").query_async(conn).await.unwrap();
        seconds * 1000 + micros / 1000
    }

    async fn wait_for_leases(prefix: &str, user: &str, count: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while open_leases(prefix, user).await != count {
            assert!(
                std::time::Instant::now() < deadline,
                "{user} still holds {} leases",
                open_leases(prefix, user).await
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn concurrent_streams_per_user_count_the_streams_of_every_node() {
        let (prefix, node_1, node_2) = two_nodes_with(DeliveryConfig {
            max_streams_per_user: 2,
            ..DeliveryConfig::default()
        })
        .await;
        let path = stream_path(&["user.u1.referrals"], "");
        let auth = bearer("u1");
        let headers = [("authorization", auth.as_str())];
        let mut on_1 = Sse::connect(&node_1.url(&path), &headers).await;
        let mut on_2 = Sse::connect(&node_2.url(&path), &headers).await;
        assert_eq!((on_1.status, on_2.status), (200, 200));
        on_1.next_frame().await.unwrap();
        on_2.next_frame().await.unwrap();
        // One stream on each node: the user is at the limit on both, though each node holds only one.
        assert_limited(
            Sse::connect(&node_1.url(&path), &headers).await,
            "too_many_streams",
        )
        .await;
        assert_limited(
            Sse::connect(&node_2.url(&path), &headers).await,
            "too_many_streams",
        )
        .await;
        let poll = client()
            .get(node_2.url("/v1/poll?topic=user.u1.referrals&wait=0"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(poll.status(), 429, "a poll counts as a stream too");
        // Another user has a budget of their own.
        let other_auth = format!("Bearer {}", token("u2", &[], &[]));
        let other = Sse::connect(
            &node_1.url(&stream_path(&["user.u2.referrals"], "")),
            &[("authorization", other_auth.as_str())],
        )
        .await;
        assert_eq!(other.status, 200);
        // A stream that ends on node 1 frees its slot for node 2.
        on_1.close();
        wait_for_leases(&prefix, "u1", 1).await;
        let again = Sse::connect(&node_2.url(&path), &headers).await;
        assert_eq!(again.status, 200);
        drop((on_2, again, other));
        wait_for_leases(&prefix, "u1", 0).await;
        finish(&prefix, [node_1, node_2]).await;
    }

    /// Per-minute counts: waits for the start of the next minute when this one is nearly over, so that the whole
    /// test falls within one.
    async fn start_early_in_a_minute() {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 60;
        if second > 45 {
            tokio::time::sleep(std::time::Duration::from_secs(61 - second)).await;
        }
    }

    #[tokio::test]
    async fn new_streams_per_user_per_minute_count_the_streams_of_every_node() {
        start_early_in_a_minute().await;
        let (prefix, node_1, node_2) = two_nodes_with(DeliveryConfig {
            max_new_streams_per_user_per_minute: 3,
            ..DeliveryConfig::default()
        })
        .await;
        let path = stream_path(&["user.u1.referrals"], "");
        let auth = bearer("u1");
        let headers = [("authorization", auth.as_str())];
        for node in [&node_1, &node_2, &node_1] {
            let mut sse = Sse::connect(&node.url(&path), &headers).await;
            assert_eq!(sse.status, 200);
            sse.next_frame().await.unwrap();
        }
        assert_limited(
            Sse::connect(&node_2.url(&path), &headers).await,
            "stream_rate_limited",
        )
        .await;
        assert_limited(
            Sse::connect(&node_1.url(&path), &headers).await,
            "stream_rate_limited",
        )
        .await;
        finish(&prefix, [node_1, node_2]).await;
    }

    #[tokio::test]
    async fn tickets_per_user_per_minute_count_the_tickets_of_every_node() {
        start_early_in_a_minute().await;
        let (prefix, node_1, node_2) = two_nodes_with(DeliveryConfig {
            max_new_streams_per_user_per_minute: 3,
            ..DeliveryConfig::default()
        })
        .await;
        let ticket = |node: &Node, user: &str| {
            client()
                .post(node.url("/v1/tickets"))
                .bearer_auth(token(user, &[], &[]))
                .send()
        };
        for node in [&node_1, &node_2, &node_1] {
            assert_eq!(ticket(node, "u1").await.unwrap().status(), 201);
        }
        for node in [&node_2, &node_1] {
            assert_ticket_rate_limited(ticket(node, "u1").await.unwrap()).await;
        }
        assert_eq!(
            ticket(&node_2, "u2").await.unwrap().status(),
            201,
            "another user is unaffected"
        );
        finish(&prefix, [node_1, node_2]).await;
    }

    /// Leases live for 2 s in these tests (`test_config`): a stream held longer is still counted (its node renews
    /// the lease), and the lease of a node that died without removing it stops counting once it expires.
    #[tokio::test]
    async fn held_streams_stay_counted_and_a_dead_nodes_leases_expire() {
        let (prefix, node_1, node_2) = two_nodes_with(DeliveryConfig {
            max_streams_per_user: 1,
            ..DeliveryConfig::default()
        })
        .await;
        let path = stream_path(&["user.u1.referrals"], "");
        let auth = bearer("u1");
        let headers = [("authorization", auth.as_str())];
        let mut held = Sse::connect(&node_1.url(&path), &headers).await;
        assert_eq!(held.status, 200);
        held.next_frame().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
        assert_limited(
            Sse::connect(&node_2.url(&path), &headers).await,
            "too_many_streams",
        )
        .await;
        held.close();
        wait_for_leases(&prefix, "u1", 0).await;

        // A lease left by a node that is gone, expiring in 3 s (time enough for the refused connect on a busy
        // machine).
        let mut conn = raw(&redis_url()).await;
        let expiry = redis_time_ms(&mut conn).await + 3_000;
        let _: i64 = ::redis::cmd("ZADD")
            .arg(format!("{prefix}streams:{{user:u1}}"))
            .arg(expiry)
            .arg("gone:0")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_limited(
            Sse::connect(&node_2.url(&path), &headers).await,
            "too_many_streams",
        )
        .await;
        while redis_time_ms(&mut conn).await <= expiry {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let after = Sse::connect(&node_2.url(&path), &headers).await;
        assert_eq!(after.status, 200);
        drop(after);
        wait_for_leases(&prefix, "u1", 0).await;

        // A node that stops gives its streams' slots back as it goes, not a lease time later.
        let mut on_1 = Sse::connect(&node_1.url(&path), &headers).await;
        assert_eq!(on_1.status, 200);
        on_1.next_frame().await.unwrap();
        assert_eq!(open_leases(&prefix, "u1").await, 1);
        let started = std::time::Instant::now();
        node_1.stop().await;
        assert_eq!(
            open_leases(&prefix, "u1").await,
            0,
            "the stopped node's lease is gone"
        );
        // Expired leases stay in the set until an admission drops them, so the count above shows the removal
        // whatever the time; this bound only catches a stop that hangs.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "stopping took {:?}",
            started.elapsed()
        );
        drop(on_1);
        node_2.stop().await;
        cleanup(&redis_url(), &prefix).await;
    }

    #[tokio::test]
    async fn anonymous_streams_per_address_count_the_streams_of_every_node() {
        let (prefix, node_1, node_2) = two_nodes_with(DeliveryConfig {
            max_anonymous_streams_per_address: 2,
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            ..DeliveryConfig::default()
        })
        .await;
        let path = stream_path(&["leaderboard.daily"], "");
        let from = |address: &'static str| [("x-forwarded-for", address)];
        let mut on_1 = Sse::connect(&node_1.url(&path), &from("198.51.100.7")).await;
        let mut on_2 = Sse::connect(&node_2.url(&path), &from("198.51.100.7")).await;
        assert_eq!((on_1.status, on_2.status), (200, 200));
        on_1.next_frame().await.unwrap();
        on_2.next_frame().await.unwrap();
        assert_limited(
            Sse::connect(&node_1.url(&path), &from("198.51.100.7")).await,
            "too_many_streams",
        )
        .await;
        let mut conn = raw(&redis_url()).await;
        let held: u64 = ::redis::cmd("ZCARD")
            .arg(format!("{prefix}streams:{{addr:198.51.100.7}}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(held, 2, "both nodes' streams are counted under the address");
        let other = Sse::connect(&node_2.url(&path), &from("198.51.100.8")).await;
        assert_eq!(other.status, 200);
        drop((on_1, on_2, other));
        finish(&prefix, [node_1, node_2]).await;
    }

    /// A Redis that requires a password (`redis://:password@host:port`): history, live fan-out (the listener's
    /// own connection authenticates too) and resumption across nodes work; a wrong password is refused at start
    /// with an error that does not repeat it.
    #[tokio::test]
    async fn a_server_with_a_password_serves_both_nodes() {
        let server = redis_support::PrivateRedis::start_with_password("s3cret-pw").await;
        let prefix = unique_prefix();
        let node_1 = Node::start(&server.url(), &prefix, DeliveryConfig::default()).await;
        let node_2 = Node::start(&server.url(), &prefix, DeliveryConfig::default()).await;
        let path = stream_path(&["leaderboard.daily"], "");
        let mut on_2 = Sse::connect(&node_2.url(&path), &[]).await;
        on_2.next_frame().await.unwrap();
        node_1.publish("leaderboard.daily", "m-1").await;
        assert_eq!(key(&on_2.next_message().await.unwrap()).1, "m-1");
        let last_id = on_2.last_id.clone().unwrap();
        on_2.close();
        node_2.publish("leaderboard.daily", "m-2").await;
        let mut resumed = Sse::connect(&node_1.url(&path), &[("last-event-id", last_id.as_str())]).await;
        assert_eq!(key(&resumed.next_message().await.unwrap()).1, "m-2");
        resumed.close();

        let wrong = format!("redis://:wrong-pw@127.0.0.1:{}", server.port);
        let refused = social_delivery::redis::RedisBackend::connect(
            redis_support::test_config(&wrong, &prefix),
            tokio_util::sync::CancellationToken::new(),
        )
        .await;
        let error = refused.err().expect("a wrong password is refused");
        assert!(!error.to_string().contains("wrong-pw"), "{error}");
        node_1.stop().await;
        node_2.stop().await;
    }

    /// A node holding stream leases stops promptly while its Redis is gone: the lease keeper gives up on what it
    /// cannot remove (the leases expire by themselves) instead of holding up the exit.
    #[tokio::test]
    async fn a_node_whose_redis_is_gone_still_stops_promptly() {
        let server = redis_support::PrivateRedis::start().await;
        let prefix = unique_prefix();
        let config = DeliveryConfig {
            max_streams_per_user: 4,
            ..DeliveryConfig::default()
        };
        let node = Node::start(&server.url(), &prefix, config).await;
        let auth = format!("Bearer {}", token("u1", &[], &[]));
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut sse = Sse::connect(
                &node.url(&stream_path(&["user.u1.referrals"], "")),
                &[("authorization", auth.as_str())],
            )
            .await;
            assert_eq!(sse.status, 200);
            sse.next_frame().await.unwrap();
            held.push(sse);
        }
        server.kill();
        let started = std::time::Instant::now();
        node.stop().await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(9),
            "stopping took {:?}",
            started.elapsed()
        );
        drop(held);
    }
}
