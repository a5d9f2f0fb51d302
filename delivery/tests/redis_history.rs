//! `RedisHistory` against a real Redis: the conformance behaviour of `MemoryHistory` (order, reads after a position,
//! gaps, epochs), dense offsets across nodes, retention, and a typed retryable error while Redis is down.

#![allow(clippy::unwrap_used)]

mod redis_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis_support::*;
use social_delivery::History;
use social_delivery::history::{GapReason, Position, Replay, SequencedAppend};
use social_delivery::redis::{RedisBackendError, RedisConfig};
use tokio_util::sync::CancellationToken;

async fn history(prefix: &str, adjust: impl FnOnce(&mut RedisConfig)) -> Arc<dyn History> {
    let mut config = test_config(&redis_url(), prefix);
    adjust(&mut config);
    connect(config, CancellationToken::new()).await.history()
}

fn offsets(replay: Replay) -> Vec<u64> {
    match replay {
        Replay::Messages(entries) => entries.iter().map(|e| e.position.offset).collect(),
        Replay::Gap(reason) => panic!("gap: {reason:?}"),
    }
}

fn offsets_of(replay: Replay) -> Vec<u64> {
    offsets(replay)
}

fn gap(replay: Replay) -> GapReason {
    match replay {
        Replay::Gap(reason) => reason,
        Replay::Messages(entries) => panic!("expected a gap, got {} messages", entries.len()),
    }
}

/// Inside `mod redis`, so that `cargo test -p social-delivery redis` selects these tests.
mod redis {
    use super::*;

    #[tokio::test]
    async fn appends_in_order_and_reads_after_a_position() {
        let prefix = unique_prefix();
        let history = history(&prefix, |_| {}).await;
        let mut epoch = None;
        for i in 1..=5u64 {
            let entry = history
                .append("trending.1h", Bytes::from(format!("{{\"n\":{i}}}")))
                .await
                .unwrap();
            assert_eq!(entry.position.offset, i);
            assert_ne!(entry.position.epoch, 0);
            assert_eq!(*epoch.get_or_insert(entry.position.epoch), entry.position.epoch);
        }
        let epoch = epoch.unwrap();
        let head = history.head("trending.1h").await.unwrap();
        assert_eq!(head, Position { epoch, offset: 5 });
        let replay = history
            .read_after("trending.1h", Position { epoch, offset: 2 }, 100)
            .await
            .unwrap();
        let Replay::Messages(entries) = replay else {
            panic!("gap")
        };
        assert_eq!(
            entries.iter().map(|e| e.position.offset).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(&entries[0].json[..], b"{\"n\":3}");
        assert!(entries.windows(2).all(|w| w[0].published_at <= w[1].published_at));
        assert!(offsets(history.read_after("trending.1h", head, 100).await.unwrap()).is_empty());
        let from_start = history
            .read_after("trending.1h", Position { epoch, offset: 0 }, 100)
            .await
            .unwrap();
        assert_eq!(offsets(from_start), [1, 2, 3, 4, 5]);
        let last = history.last("trending.1h", 2).await.unwrap();
        assert_eq!(last.iter().map(|e| e.position.offset).collect::<Vec<_>>(), [4, 5]);
        assert!(history.last("trending.1h", 0).await.unwrap().is_empty());
        assert!(history.last("trending.24h", 3).await.unwrap().is_empty());

        // A topic nobody published to: offset 0 in an epoch that the first append keeps.
        let empty = history.head("trending.24h").await.unwrap();
        assert_eq!(empty.offset, 0);
        assert!(offsets(history.read_after("trending.24h", empty, 10).await.unwrap()).is_empty());
        let first = history
            .append("trending.24h", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(
            first.position,
            Position {
                epoch: empty.epoch,
                offset: 1
            }
        );
        assert_eq!(
            offsets(history.read_after("trending.24h", empty, 10).await.unwrap()),
            [1]
        );
        cleanup(&redis_url(), &prefix).await;
    }

    #[tokio::test]
    async fn gaps_are_reported_never_skipped() {
        let prefix = unique_prefix();
        // `MAXLEN ~` trims whole stream nodes (100 entries by default): 300 appends over a cap of 10 must drop some.
        let history = history(&prefix, |config| config.history_max_messages_per_topic = 10).await;
        let mut epoch = 0;
        for i in 0..300 {
            epoch = history
                .append("t", Bytes::from(format!("{i}")))
                .await
                .unwrap()
                .position
                .epoch;
        }
        let last = history.last("t", 1_000).await.unwrap();
        let first_retained = last[0].position.offset;
        assert!(first_retained > 1, "nothing was trimmed");
        assert_eq!(last.last().unwrap().position.offset, 300);
        assert_eq!(
            last.len() as u64,
            300 - first_retained + 1,
            "retained offsets are dense"
        );

        let covered = history
            .read_after(
                "t",
                Position {
                    epoch,
                    offset: first_retained - 1,
                },
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(offsets(covered).len() as u64, 300 - first_retained + 1);
        let expired = history
            .read_after(
                "t",
                Position {
                    epoch,
                    offset: first_retained - 2,
                },
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(gap(expired), GapReason::Expired);
        let other_epoch = history
            .read_after(
                "t",
                Position {
                    epoch: epoch ^ 1,
                    offset: 299,
                },
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(gap(other_epoch), GapReason::EpochChanged);
        let beyond = history
            .read_after("t", Position { epoch, offset: 301 }, 1_000)
            .await
            .unwrap();
        assert_eq!(gap(beyond), GapReason::EpochChanged);
        let too_many = history
            .read_after("t", Position { epoch, offset: 297 }, 2)
            .await
            .unwrap();
        assert_eq!(gap(too_many), GapReason::Expired);
        cleanup(&redis_url(), &prefix).await;
    }

    #[tokio::test]
    async fn lost_keys_change_the_epoch_and_a_lost_stream_is_expired() {
        let url = redis_url();
        let prefix = unique_prefix();
        let history = history(&prefix, |_| {}).await;
        for i in 0..3 {
            history
                .append("leaderboard.daily", Bytes::from(format!("{i}")))
                .await
                .unwrap();
        }
        let old = history.head("leaderboard.daily").await.unwrap();
        let mut conn = raw(&url).await;

        // The stream vanished, the epoch survived: what the client missed is gone, and says so.
        let _: () = ::redis::cmd("DEL")
            .arg(format!("{prefix}history:{{leaderboard.daily}}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let expired = history
            .read_after(
                "leaderboard.daily",
                Position {
                    epoch: old.epoch,
                    offset: 1,
                },
                100,
            )
            .await
            .unwrap();
        assert_eq!(gap(expired), GapReason::Expired);
        assert!(offsets(history.read_after("leaderboard.daily", old, 100).await.unwrap()).is_empty());
        let next = history
            .append("leaderboard.daily", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(
            next.position,
            Position {
                epoch: old.epoch,
                offset: 4
            }
        );

        // Everything vanished (a flush): a new epoch, offsets restart, old positions are reset.
        let deleted: u64 = ::redis::cmd("DEL")
            .arg(&keys_under(&url, &prefix).await)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(deleted >= 2);
        let fresh = history.head("leaderboard.daily").await.unwrap();
        assert_ne!(fresh.epoch, old.epoch);
        assert_eq!(fresh.offset, 0);
        let reset = history
            .read_after(
                "leaderboard.daily",
                Position {
                    epoch: old.epoch,
                    offset: 4,
                },
                100,
            )
            .await
            .unwrap();
        assert_eq!(gap(reset), GapReason::EpochChanged);
        let first = history
            .append("leaderboard.daily", Bytes::from_static(b"y"))
            .await
            .unwrap();
        assert_eq!(
            first.position,
            Position {
                epoch: fresh.epoch,
                offset: 1
            }
        );

        // Keys lost between two appends, without a head in between: the append starts the new epoch itself.
        let _: u64 = ::redis::cmd("DEL")
            .arg(&keys_under(&url, &prefix).await)
            .query_async(&mut conn)
            .await
            .unwrap();
        let again = history
            .append("leaderboard.daily", Bytes::from_static(b"z"))
            .await
            .unwrap();
        assert_eq!(again.position.offset, 1);
        assert_ne!(again.position.epoch, fresh.epoch);

        // Only the meta hash lost, the stream left behind: the new epoch starts from an empty stream.
        history
            .append("leaderboard.daily", Bytes::from_static(b"y"))
            .await
            .unwrap();
        let _: u64 = ::redis::cmd("DEL")
            .arg(format!("{prefix}meta:{{leaderboard.daily}}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let restarted = history
            .append("leaderboard.daily", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(restarted.position.offset, 1);
        assert_ne!(restarted.position.epoch, again.position.epoch);
        let kept = history.last("leaderboard.daily", 10).await.unwrap();
        assert_eq!(kept.len(), 1, "entries of the lost epoch are dropped");
        assert_eq!(&kept[0].json[..], b"x");
        cleanup(&url, &prefix).await;
    }

    #[tokio::test]
    async fn offsets_are_dense_across_nodes_appending_at_once() {
        let prefix = unique_prefix();
        let node_1 = history(&prefix, |_| {}).await;
        let node_2 = history(&prefix, |_| {}).await;
        let append_many = |history: Arc<dyn History>, node: u32| async move {
            let mut offsets = Vec::new();
            for i in 0..100 {
                let entry = history
                    .append("testimonials.recent", Bytes::from(format!("{node}-{i}")))
                    .await
                    .unwrap();
                offsets.push(entry.position.offset);
            }
            offsets
        };
        let (a, b) = tokio::join!(
            tokio::spawn(append_many(node_1.clone(), 1)),
            tokio::spawn(append_many(node_2.clone(), 2))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.windows(2).all(|w| w[0] < w[1]) && b.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<u64> = a.into_iter().chain(b).collect();
        all.sort_unstable();
        assert_eq!(all, (1..=200).collect::<Vec<_>>());
        let head_1 = node_1.head("testimonials.recent").await.unwrap();
        assert_eq!(head_1, node_2.head("testimonials.recent").await.unwrap());
        let replay = node_2
            .read_after(
                "testimonials.recent",
                Position {
                    epoch: head_1.epoch,
                    offset: 0,
                },
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(offsets(replay), (1..=200).collect::<Vec<_>>());
        cleanup(&redis_url(), &prefix).await;
    }

    #[tokio::test]
    async fn messages_older_than_the_retention_expire() {
        let prefix = unique_prefix();
        // Three seconds: the reads below must all run within the young message's retention.
        let history = history(&prefix, |config| config.history_retention_secs = 3).await;
        let first = history
            .append("trending.1h", Bytes::from_static(b"old"))
            .await
            .unwrap();
        // Redis time cannot be paused: wait out the retention.
        tokio::time::sleep(Duration::from_millis(3_100)).await;
        let young = history
            .append("trending.1h", Bytes::from_static(b"young"))
            .await
            .unwrap();
        let last = history.last("trending.1h", 10).await.unwrap();
        assert_eq!(last.iter().map(|e| e.position.offset).collect::<Vec<_>>(), [2]);
        let before = Position {
            epoch: first.position.epoch,
            offset: 0,
        };
        assert_eq!(
            gap(history.read_after("trending.1h", before, 10).await.unwrap()),
            GapReason::Expired
        );
        assert_eq!(
            offsets(
                history
                    .read_after("trending.1h", first.position, 10)
                    .await
                    .unwrap()
            ),
            [2]
        );
        assert_eq!(history.head("trending.1h").await.unwrap(), young.position);
        cleanup(&redis_url(), &prefix).await;
    }

    /// More messages past the retention than one read trims: none of them is served.
    #[tokio::test]
    async fn a_burst_past_the_retention_is_expired_as_a_whole() {
        let prefix = unique_prefix();
        let history = history(&prefix, |config| config.history_retention_secs = 1).await;
        let mut positions = Vec::new();
        for n in 0..200 {
            let appended = history
                .append("trending.24h", Bytes::from(format!("m{n}")))
                .await
                .unwrap();
            positions.push(appended.position);
        }
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        // Each read trims some: the first one sees most of the burst still there.
        assert_eq!(
            gap(history
                .read_after("trending.24h", positions[150], 10_000)
                .await
                .unwrap()),
            GapReason::Expired
        );
        assert!(history.last("trending.24h", 10).await.unwrap().is_empty());
        cleanup(&redis_url(), &prefix).await;
    }

    #[tokio::test]
    async fn a_batch_across_topics_appends_in_order_and_drops_sequences_a_topic_holds() {
        let prefix = unique_prefix();
        let history = history(&prefix, |_| {}).await;
        let item = |topic: &str, sequence: u64| SequencedAppend {
            topic: topic.to_owned(),
            json: Bytes::from(format!("{{\"seq\":{sequence}}}")),
            sequence,
        };
        let batch: Vec<SequencedAppend> = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]
            .into_iter()
            .map(|(topic, sequence)| item(topic, sequence))
            .collect();
        let appended = history.append_batch_sequenced(batch.clone()).await.unwrap();
        let offsets: Vec<u64> = appended
            .iter()
            .map(|entry| entry.as_ref().unwrap().position.offset)
            .collect();
        assert_eq!(offsets, [1, 1, 2, 1, 2]);
        assert_eq!(&appended[2].as_ref().unwrap().json[..], b"{\"seq\":3}");
        // The same batch again (a retry after an error, a replay after a restart): nothing is appended twice.
        let again = history.append_batch_sequenced(batch).await.unwrap();
        assert!(again.iter().all(Option::is_none));
        // Overlapping: only what a topic does not hold yet.
        let overlap = vec![item("a", 3), item("b", 5), item("a", 6), item("d", 7)];
        let appended = history.append_batch_sequenced(overlap).await.unwrap();
        let positions: Vec<Option<u64>> = appended
            .iter()
            .map(|entry| entry.as_ref().map(|e| e.position.offset))
            .collect();
        assert_eq!(positions, [None, None, Some(3), Some(1)]);
        let a = history
            .read_after(
                "a",
                Position {
                    epoch: appended[2].as_ref().unwrap().position.epoch,
                    offset: 0,
                },
                10,
            )
            .await
            .unwrap();
        assert_eq!(offsets_of(a), [1, 2, 3]);
        // More messages than one script call takes, in order.
        let many: Vec<SequencedAppend> = (100..700).map(|sequence| item("many", sequence)).collect();
        let appended = history.append_batch_sequenced(many).await.unwrap();
        assert_eq!(
            appended
                .iter()
                .map(|e| e.as_ref().unwrap().position.offset)
                .collect::<Vec<_>>(),
            (1..=600).collect::<Vec<_>>()
        );
        cleanup(&redis_url(), &prefix).await;
    }

    #[tokio::test]
    async fn ttls_are_renewed_once_per_interval_and_cover_the_retention() {
        let prefix = unique_prefix();
        // Retention 4 s: renewal interval 1 s, so TTLs are set to 5 s (stream) and meta TTL + 1 s.
        let history = history(&prefix, |config| {
            config.history_retention_secs = 4;
            config.meta_ttl_secs = 8;
        })
        .await;
        let keys = social_delivery::redis::Keys::new(&prefix).unwrap();
        let conn = raw(&redis_url()).await;
        let pttl = |key: String| {
            let mut conn = conn.clone();
            async move {
                ::redis::cmd("PTTL")
                    .arg(key)
                    .query_async::<i64>(&mut conn)
                    .await
                    .unwrap()
            }
        };
        history.append("t", Bytes::from_static(b"1")).await.unwrap();
        let stream_ttl = pttl(keys.history("t")).await;
        let meta_ttl = pttl(keys.meta("t")).await;
        assert!((4_000..=5_000).contains(&stream_ttl), "stream ttl {stream_ttl}");
        assert!((8_000..=9_000).contains(&meta_ttl), "meta ttl {meta_ttl}");
        // Within the interval: not renewed (the TTL keeps running down).
        tokio::time::sleep(Duration::from_millis(300)).await;
        history.append("t", Bytes::from_static(b"2")).await.unwrap();
        let running = pttl(keys.history("t")).await;
        assert!(running <= 4_700, "renewed too soon: {running}");
        // After the interval: renewed, still covering a full retention after the newest message.
        tokio::time::sleep(Duration::from_millis(800)).await;
        history.append("t", Bytes::from_static(b"3")).await.unwrap();
        let renewed = pttl(keys.history("t")).await;
        assert!(renewed > 4_000, "not renewed: {renewed}");
        // A stream lost on its own (its meta kept) gets its TTL back on the next append.
        ::redis::cmd("DEL")
            .arg(keys.history("t"))
            .query_async::<()>(&mut conn.clone())
            .await
            .unwrap();
        history.append("t", Bytes::from_static(b"4")).await.unwrap();
        let recreated = pttl(keys.history("t")).await;
        assert!(recreated > 0, "a recreated stream must expire: {recreated}");
        cleanup(&redis_url(), &prefix).await;
    }

    #[tokio::test]
    async fn unreachable_redis_is_a_typed_retryable_error_and_the_connection_comes_back() {
        let refused = connect_refused().await;
        assert!(
            matches!(refused, RedisBackendError::Unavailable(_)),
            "{refused:?}"
        );
        assert!(refused.is_retryable());

        let server = PrivateRedis::start().await;
        let prefix = unique_prefix();
        let history = history_at(&server.url(), &prefix).await;
        let before = history
            .append("trending.1h", Bytes::from_static(b"a"))
            .await
            .unwrap();
        let port = server.kill();

        let started = std::time::Instant::now();
        let failed = history.append("trending.1h", Bytes::from_static(b"b")).await;
        assert!(
            matches!(&failed, Err(social_delivery::DeliveryError::Backend(_))),
            "{failed:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "failing took {:?}",
            started.elapsed()
        );
        assert!(history.head("trending.1h").await.is_err());

        // Redis comes back empty (no persistence): the next operations reconnect, and the epoch says history was lost.
        let _server = PrivateRedis::start_on(port).await;
        let mut after = None;
        for _ in 0..100 {
            if let Ok(entry) = history.append("trending.1h", Bytes::from_static(b"c")).await {
                after = Some(entry);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let after = after.expect("the connection manager reconnects");
        assert_ne!(after.position.epoch, before.position.epoch);
        assert_eq!(after.position.offset, 1);
    }

    #[allow(non_snake_case)]
    async fn connect_refused() -> RedisBackendError {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = test_config(&format!("redis://127.0.0.1:{port}"), "test:refused:");
        match social_delivery::redis::RedisBackend::connect(config, CancellationToken::new()).await {
            Ok(_) => panic!("nothing listens on port {port}"),
            Err(error) => error,
        }
    }

    async fn history_at(url: &str, prefix: &str) -> Arc<dyn History> {
        let mut config = test_config(url, prefix);
        config.response_timeout_ms = 500;
        config.connect_timeout_ms = 300;
        connect(config, CancellationToken::new()).await.history()
    }
}
