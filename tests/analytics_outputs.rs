//! The pipeline's derived messages and the delivery tier's latency reach a real ClickHouse server:
//! - `trending_snapshots` and `leaderboard_snapshots` hold exactly the rows the `social.trending.updated` and
//!   `referral.leaderboard.updated` messages of the derived log give, and the dashboards' panels over them show
//!   what the operators publish as the topics' current state;
//! - `delivery_latency` counts every message written to an SSE stream, on a `delivery` node and on the pipeline's
//!   own delivery tier;
//! - posting the workload twice, and replaying every topic from offset 0 into the same database, changes no row.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Utc};
use common::backends::*;
use common::*;
use social_pipeline::bus::Bus;
use social_pipeline::bus::durable::{DurableBus, DurableBusConfig};
use social_pipeline::generate::{Generator, GeneratorConfig};

const EVENTS: usize = 20_000;
/// The leaderboards' N (the operators' default configuration).
const TOP_N: u32 = 100;
const DERIVED: &str = "social-derived";
const TOPICS: &str = "topic=leaderboard.daily&topic=leaderboard.weekly&topic=leaderboard.monthly\
                      &topic=leaderboard.all-time&topic=trending.1h&topic=trending.24h&topic=testimonials.recent";

/// A trending or leaderboard message of the derived log.
#[derive(Debug, Clone)]
struct Derived {
    event_type: String,
    time: DateTime<Utc>,
    data: serde_json::Value,
}

/// The trending and leaderboard messages of the derived log under `data_dir`, in order, with the log's end and the
/// offset the `analytics` group committed on it (the pipeline must have stopped).
async fn derived_log(data_dir: &std::path::Path) -> (Vec<Derived>, u64, Option<u64>) {
    let bus = DurableBus::open(DurableBusConfig::new(data_dir)).await.unwrap();
    let end = bus.end_offset(DERIVED, 0).await.unwrap();
    let committed = bus.committed("analytics", DERIVED, 0).await.unwrap();
    let mut messages = Vec::new();
    let mut next = 0;
    while next < end {
        let records = bus.fetch(DERIVED, 0, next, 5000, Duration::ZERO).await.unwrap();
        next = records.last().unwrap().offset + 1;
        for record in records {
            let event: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
            let event_type = event["type"].as_str().unwrap().to_string();
            let subject = event["subject"].as_str().unwrap();
            let wanted = (event_type == "social.trending.updated" && subject.starts_with("trending."))
                || (event_type == "referral.leaderboard.updated" && subject.starts_with("leaderboard."));
            if wanted {
                messages.push(Derived {
                    event_type,
                    time: DateTime::parse_from_rfc3339(event["time"].as_str().unwrap())
                        .unwrap()
                        .with_timezone(&Utc),
                    data: event["data"].clone(),
                });
            }
        }
    }
    bus.close().await.unwrap();
    (messages, end, committed)
}

/// Moves the `analytics` group back to offset 0 on every topic (the pipeline must have stopped).
async fn rewind_analytics(data_dir: &std::path::Path) {
    let bus = DurableBus::open(DurableBusConfig::new(data_dir)).await.unwrap();
    for topic in ["social-events", "social-events-dead-letter", DERIVED] {
        for partition in 0..bus.partitions(topic).unwrap() {
            bus.commit("analytics", topic, partition, 0).await.unwrap();
        }
    }
    bus.close().await.unwrap();
}

/// `board.{first day of the period}` for the periodic boards, as the table names them.
fn board_period(board: &str, time: DateTime<Utc>) -> String {
    let date = time.date_naive();
    let first = match board {
        "daily" => date,
        "weekly" => date - chrono::Days::new(u64::from(date.weekday().num_days_from_monday())),
        "monthly" => date.with_day(1).unwrap(),
        _ => return board.to_string(),
    };
    format!("{board}.{}", first.format("%Y-%m-%d"))
}

type TrendingRows = BTreeMap<(String, i64, u32), (String, String)>;
/// Ranked items of a trending message: rank, content id, score.
type Items = Vec<(u32, String, String)>;
type LeaderboardRows = BTreeMap<(String, i64, u32), (String, String)>;

/// What `trending_snapshots` must hold for `messages`: per window and second, the last message's ranks, and the
/// ranks of earlier messages of that second beyond them empty.
fn expected_trending(messages: &[Derived]) -> TrendingRows {
    // Per window and second: the last message's items and the most ranks written.
    let mut by_second: BTreeMap<(String, i64), (Items, u32)> = BTreeMap::new();
    for m in messages
        .iter()
        .filter(|m| m.event_type == "social.trending.updated")
    {
        let window = m.data["window"].as_str().unwrap().to_string();
        let items: Items = m.data["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["rank"].as_u64().unwrap() as u32,
                    item["contentId"].as_str().unwrap().to_string(),
                    format_score(item["score"].as_f64().unwrap()),
                )
            })
            .collect();
        let entry = by_second
            .entry((window, m.time.timestamp()))
            .or_insert((Vec::new(), 0));
        entry.1 = entry.1.max(items.len().max(1) as u32);
        entry.0 = items;
    }
    let mut rows = TrendingRows::new();
    for ((window, second), (items, ranks)) in by_second {
        for rank in 1..=ranks {
            let row = items
                .iter()
                .find(|(r, _, _)| *r == rank)
                .map(|(_, id, score)| (id.clone(), score.clone()))
                .unwrap_or_else(|| (String::new(), format_score(0.0)));
            rows.insert((window.clone(), second, rank), row);
        }
    }
    rows
}

/// What `leaderboard_snapshots` must hold for `messages`: per board period, second and position, the user of the
/// last change and their completed referrals; a message about a board shorter than N also empties the positions
/// past its `size`, up to N.
fn expected_leaderboards(messages: &[Derived]) -> LeaderboardRows {
    let mut rows = LeaderboardRows::new();
    for m in messages
        .iter()
        .filter(|m| m.event_type == "referral.leaderboard.updated")
    {
        let board = board_period(m.data["boardId"].as_str().unwrap(), m.time);
        for change in m.data["changes"].as_array().unwrap() {
            rows.insert(
                (
                    board.clone(),
                    m.time.timestamp(),
                    change["position"].as_u64().unwrap() as u32,
                ),
                (
                    change["userId"].as_str().unwrap().to_string(),
                    format_score(change["completed"].as_f64().unwrap()),
                ),
            );
        }
        let size = m.data["size"]
            .as_u64()
            .expect("every leaderboard message has a size") as u32;
        for position in size + 1..=TOP_N {
            rows.insert(
                (board.clone(), m.time.timestamp(), position),
                (String::new(), format_score(0.0)),
            );
        }
    }
    rows
}

fn format_score(score: f64) -> String {
    format!("{score:.6}")
}

/// The rows of a TSV answer.
async fn tsv(database: &Database, sql: &str) -> Vec<Vec<String>> {
    let bytes = database
        .client
        .query_raw(sql)
        .fetch_bytes("TSV")
        .unwrap()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

async fn trending_table(database: &Database) -> TrendingRows {
    tsv(
        database,
        "SELECT window_name, toUInt32(snapshot_time), rank, content_id, score FROM trending_snapshots FINAL",
    )
    .await
    .into_iter()
    .map(|row| {
        (
            (row[0].clone(), row[1].parse().unwrap(), row[2].parse().unwrap()),
            (row[3].clone(), format_score(row[4].parse().unwrap())),
        )
    })
    .collect()
}

async fn leaderboard_table(database: &Database) -> LeaderboardRows {
    let rows = tsv(
        database,
        "SELECT board_id, toUInt32(snapshot_time), position, user_id, score FROM leaderboard_snapshots FINAL",
    )
    .await;
    rows.into_iter()
        .map(|row| {
            (
                (row[0].clone(), row[1].parse().unwrap(), row[2].parse().unwrap()),
                (row[3].clone(), format_score(row[4].parse().unwrap())),
            )
        })
        .collect()
}

/// The SQL of the dashboard panel titled `title`, for a time range ending in the far future.
fn panel_sql(file: &str, title: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dashboards")
        .join(file);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panel = json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no panel {title} in {file}"));
    let sql = panel["targets"][0]["rawSql"].as_str().unwrap();
    assert!(!sql.contains("$__timeFilter"), "{title}: expected an as-of query");
    sql.replace("$__toTime", "toDateTime(4000000000)")
}

/// Latency counts per node and topic class (`sum(count)` over `FINAL`).
async fn latency_counts(database: &Database) -> BTreeMap<(String, String), u64> {
    tsv(
        database,
        "SELECT node, topic_class, toUInt64(sum(count)) FROM delivery_latency FINAL GROUP BY node, topic_class",
    )
    .await
    .into_iter()
    .map(|row| ((row[0].clone(), row[1].clone()), row[2].parse().unwrap()))
    .collect()
}

/// The topic class the delivery tier counts a message of `topic` in.
fn topic_class(topic: &str) -> &'static str {
    match topic.split('.').next() {
        Some("leaderboard") => "leaderboard",
        Some("trending") => "trending",
        Some("testimonials") => "testimonials_recent",
        _ => panic!("unexpected topic {topic}"),
    }
}

/// The value of the counter `name` on `server`'s `/metrics` (0 when absent).
async fn counter(server: &BinaryServer, name: &str) -> u64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0) as u64
}

/// Waits until the pipeline's analytics consumer has read the whole derived log.
async fn wait_for_analytics(pipeline: &BinaryServer, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, status) = get_json(&pipeline.url("/v1/status"), None).await;
        let total = status["derivedTopic"]["total"].as_u64().unwrap();
        let read = counter(pipeline, "analytics_derived_records_total").await;
        if total > 0 && read >= total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the analytics consumer read {read} of {total} derived records"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn events() -> Vec<Vec<u8>> {
    Generator::new(GeneratorConfig {
        seed: 11,
        // 1,000 s of event time: several steps of the trending windows, all within one day, week and month.
        events_per_second: 20.0,
        ..GeneratorConfig::default()
    })
    .take(EVENTS)
    .map(|e| e.json)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_and_latency_reach_clickhouse_once() {
    let database = Database::unique(&clickhouse_url());
    let redis = redis_url();
    let prefix = unique_prefix("analytics-outputs");
    let data_dir = tempfile::tempdir().unwrap();
    let pipeline_args = [
        "pipeline",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
        "--redis-url",
        &redis,
        "--redis-prefix",
        &prefix,
        "--clickhouse-url",
        &database.url,
        "--clickhouse-database",
        &database.name,
    ];
    let mut pipeline = BinaryServer::start(&pipeline_args);
    let mut node = BinaryServer::start(&[
        "delivery",
        "--redis-url",
        &redis,
        "--redis-prefix",
        &prefix,
        "--clickhouse-url",
        &database.url,
        "--clickhouse-database",
        &database.name,
    ]);
    let on_node = Arc::new(Mutex::new(Vec::new()));
    let on_node_task = read_stream(node.url(&format!("/v1/stream?{TOPICS}")), None, on_node.clone());
    let on_pipeline = Arc::new(Mutex::new(Vec::new()));
    let on_pipeline_task = read_stream(
        pipeline.url(&format!("/v1/stream?{TOPICS}")),
        None,
        on_pipeline.clone(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Every chunk twice: the duplicates are accepted and dropped by the ingest's deduplication.
    let events = events();
    for chunk in events.chunks(1000) {
        post_events(&pipeline, chunk).await;
        post_events(&pipeline, chunk).await;
    }
    wait_until_quiet(&on_node, Duration::from_secs(5)).await;
    wait_for_analytics(&pipeline, Duration::from_secs(60)).await;

    // The operators' current boards and rankings, as the delivery tier serves them.
    let mut current = BTreeMap::new();
    for topic in [
        "leaderboard.daily",
        "leaderboard.weekly",
        "leaderboard.monthly",
        "leaderboard.all-time",
        "trending.1h",
        "trending.24h",
    ] {
        let (status, snapshot) = get_json(&node.url(&format!("/v1/topics/{topic}/snapshot")), None).await;
        assert_eq!(status, 200, "{topic}: {snapshot}");
        current.insert(topic, snapshot);
    }

    // Latency: one count per EVENT written, on each node.
    let received =
        |node: &str, messages: &Arc<Mutex<Vec<Received>>>, into: &mut BTreeMap<(String, String), u64>| {
            let messages = messages.lock().unwrap();
            assert!(messages.iter().all(|m| m.kind == "EVENT"), "no reset expected");
            for message in messages.iter() {
                *into
                    .entry((node.to_string(), topic_class(&message.topic).to_string()))
                    .or_default() += 1;
            }
        };
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected_latency = loop {
        let mut expected = BTreeMap::new();
        received("delivery", &on_node, &mut expected);
        received("pipeline", &on_pipeline, &mut expected);
        let got = latency_counts(&database).await;
        if got == expected {
            break expected;
        }
        for (key, count) in &got {
            assert!(
                count <= expected.get(key).unwrap_or(&0),
                "{key:?} counted {count}, more than {expected:?}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "latency counts {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(expected_latency.values().all(|n| *n > 0), "{expected_latency:?}");
    on_node_task.abort();
    on_pipeline_task.abort();
    node.terminate();
    pipeline.terminate();

    // Every row, exactly as the derived log gives it.
    let (messages, end, committed) = derived_log(data_dir.path()).await;
    assert_eq!(
        committed,
        Some(end),
        "the analytics group committed the whole derived log"
    );
    let trending = expected_trending(&messages);
    let leaderboards = expected_leaderboards(&messages);
    let windows: BTreeSet<&str> = trending.keys().map(|(w, _, _)| w.as_str()).collect();
    assert_eq!(
        windows,
        BTreeSet::from(["1h", "24h"]),
        "trending messages of both windows"
    );
    let boards: BTreeSet<&str> = leaderboards
        .keys()
        .map(|(b, _, _)| b.split('.').next().unwrap())
        .collect();
    assert_eq!(
        boards,
        BTreeSet::from(["all-time", "daily", "monthly", "weekly"]),
        "leaderboard messages of every board"
    );
    assert!(
        trending.len() > 20 && leaderboards.len() > 100,
        "{} trending and {} leaderboard rows",
        trending.len(),
        leaderboards.len()
    );
    eprintln!(
        "{} derived trending and leaderboard messages: {} trending rows, {} leaderboard rows; latency counts \
         {expected_latency:?}",
        messages.len(),
        trending.len(),
        leaderboards.len()
    );
    assert_eq!(trending_table(&database).await, trending, "trending_snapshots");
    assert_eq!(
        leaderboard_table(&database).await,
        leaderboards,
        "leaderboard_snapshots"
    );
    assert_eq!(
        database
            .count("SELECT toUInt64(count()) FROM raw_events FINAL")
            .await,
        EVENTS as u64
    );

    // The panels show the operators' current state.
    let mut shown: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for row in tsv(
        &database,
        &panel_sql("engagement.json", "Trending content (latest snapshot)"),
    )
    .await
    {
        shown
            .entry(format!("trending.{}", row[0]))
            .or_default()
            .push((row[1].parse().unwrap(), row[2].clone()));
    }
    for row in tsv(
        &database,
        &panel_sql("referrals.json", "Leaderboards (latest snapshot)"),
    )
    .await
    {
        let board = row[0].split('.').next().unwrap();
        shown
            .entry(format!("leaderboard.{board}"))
            .or_default()
            .push((row[1].parse().unwrap(), row[2].clone()));
    }
    for (topic, snapshot) in &current {
        // `data` holds the topic's parts: `items` (the last trending message) or `top` (the board).
        let (entries, id, rank) = if topic.starts_with("trending.") {
            (&snapshot["data"]["items"]["items"], "contentId", "rank")
        } else {
            (&snapshot["data"]["top"]["top"], "userId", "position")
        };
        let expected: Vec<(u32, String)> = entries
            .as_array()
            .unwrap_or_else(|| panic!("{topic}: {snapshot}"))
            .iter()
            .map(|e| {
                (
                    e[rank].as_u64().unwrap() as u32,
                    e[id].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(!expected.is_empty(), "{topic}: {snapshot}");
        assert_eq!(shown.get(*topic), Some(&expected), "{topic}");
    }

    // A replay of every topic from offset 0 into the same database changes nothing.
    let tables = [
        "raw_events",
        "trending_snapshots",
        "leaderboard_snapshots",
        "referral_funnel_1m",
        "engagement_1m",
        "shares_1m",
    ];
    let mut counts = BTreeMap::new();
    for table in tables {
        let sql = format!("SELECT toUInt64(count()) FROM {table} FINAL");
        counts.insert(table, database.count(&sql).await);
    }
    rewind_analytics(data_dir.path()).await;
    let mut pipeline = BinaryServer::start(&pipeline_args);
    wait_for_analytics(&pipeline, Duration::from_secs(60)).await;
    pipeline.terminate();
    let (replayed, replayed_end, committed) = derived_log(data_dir.path()).await;
    assert_eq!(replayed_end, end, "the restarted pipeline emitted nothing new");
    assert_eq!(committed, Some(end));
    assert_eq!(replayed.len(), messages.len());
    for table in tables {
        let sql = format!("SELECT toUInt64(count()) FROM {table} FINAL");
        assert_eq!(
            database.count(&sql).await,
            counts[table],
            "{table} after the replay"
        );
    }
    assert_eq!(
        trending_table(&database).await,
        trending,
        "trending_snapshots after the replay"
    );
    assert_eq!(
        leaderboard_table(&database).await,
        leaderboards,
        "leaderboard_snapshots after the replay"
    );
    assert_eq!(
        latency_counts(&database).await,
        expected_latency,
        "latency after the replay"
    );

    redis_cleanup(&redis, &prefix).await;
    database.drop_it().await;
}

/// A referral event of the scenario below, at `second` seconds into 2026-01-05.
fn scenario_event(id: &str, second: u32, event_type: &str, data: serde_json::Value) -> Vec<u8> {
    let time = format!("2026-01-05T00:{:02}:{:02}Z", second / 60, second % 60);
    serde_json::to_vec(&serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/tests/leaderboard-shrink",
        "type": event_type,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    }))
    .unwrap()
}

fn completed(id: &str, second: u32, referrer: &str, new_user: &str) -> Vec<u8> {
    scenario_event(
        id,
        second,
        "referral.conversion.completed",
        serde_json::json!({
            "referralId": format!("code-{referrer}"),
            "referrerId": referrer,
            "newUserId": new_user,
            "programId": "program-standard",
            "conversionType": "registration",
        }),
    )
}

/// The all-time board as the leaderboards panel shows it: (position, user).
async fn all_time_panel(database: &Database) -> Vec<(u32, String)> {
    tsv(
        database,
        &panel_sql("referrals.json", "Leaderboards (latest snapshot)"),
    )
    .await
    .into_iter()
    .filter(|row| row[0] == "all-time")
    .map(|row| (row[1].parse().unwrap(), row[2].clone()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_hidden_from_the_end_of_a_short_board_leaves_the_dashboard() {
    let database = Database::unique(&clickhouse_url());
    let data_dir = tempfile::tempdir().unwrap();
    let mut pipeline = BinaryServer::start(&[
        "run",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
        "--clickhouse-url",
        &database.url,
        "--clickhouse-database",
        &database.name,
        "--idle-flush-ms",
        "300",
    ]);
    // Four referrers, ranked a, b, c, d and published (ticks every 5 s of event time); later c and d hide, in the
    // same second: the board, shorter than its 100 rows, loses its last two positions between two messages.
    let events = vec![
        completed("s1", 1, "ref-a", "new-1"),
        completed("s2", 2, "ref-a", "new-2"),
        completed("s3", 3, "ref-b", "new-3"),
        completed("s4", 4, "ref-c", "new-4"),
        completed("s4d", 4, "ref-d", "new-7"),
        completed("s5", 12, "ref-a", "new-5"),
        scenario_event(
            "s6",
            30,
            "user.profile.updated",
            serde_json::json!({"userId": "ref-c", "privacy": {"activityBroadcast": false}}),
        ),
        scenario_event(
            "s6d",
            30,
            "user.profile.updated",
            serde_json::json!({"userId": "ref-d", "privacy": {"incognito": true}}),
        ),
        completed("s7", 40, "ref-b", "new-6"),
    ];
    post_events(&pipeline, &events).await;

    // The operators' board once everything is released: c is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected = vec![(1, "ref-a".to_string()), (2, "ref-b".to_string())];
    loop {
        let (status, snapshot) =
            get_json(&pipeline.url("/v1/topics/leaderboard.all-time/snapshot"), None).await;
        assert!(status == 200 || status == 404, "{status} {snapshot}");
        let top: Vec<(u32, String)> = snapshot["data"]["top"]["top"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        (
                            r["position"].as_u64().unwrap() as u32,
                            r["userId"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if top == expected {
            break;
        }
        assert!(Instant::now() < deadline, "the board is {top:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_analytics(&pipeline, Duration::from_secs(60)).await;
    pipeline.terminate();

    // c and d held the third and fourth positions in ClickHouse before hiding; the panel no longer shows them.
    let rows = tsv(
        &database,
        "SELECT position, user_id FROM leaderboard_snapshots FINAL WHERE board_id = 'all-time' AND user_id != '' \
         ORDER BY snapshot_time, position",
    )
    .await;
    for (position, user) in [("3", "ref-c"), ("4", "ref-d")] {
        assert!(
            rows.iter().any(|r| r[0] == position && r[1] == user),
            "{user} was published at position {position}: {rows:?}"
        );
    }
    assert_eq!(all_time_panel(&database).await, expected, "rows: {rows:?}");
    database.drop_it().await;
}
