//! Every panel of `dashboards/*.json` runs against the real server after a generated workload and returns rows.
//! Grafana macros are replaced by a concrete time range covering the workload.

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{TestDb, generated_events};
use social_analytics::{ClickHouseSink, LeaderboardSnapshotRow, TrendingSnapshotRow};

/// Replaces `$__timeFilter(col)`, `$__fromTime` and `$__toTime` for the range [from, to] (Unix seconds).
fn expand_macros(sql: &str, from: i64, to: i64) -> String {
    let mut out = sql
        .replace("$__fromTime", &format!("toDateTime({from})"))
        .replace("$__toTime", &format!("toDateTime({to})"));
    while let Some(start) = out.find("$__timeFilter(") {
        let args = start + "$__timeFilter(".len();
        let Some(len) = out[args..].find(')') else { break };
        let column = out[args..args + len].trim().to_owned();
        out.replace_range(
            start..args + len + 1,
            &format!("{column} >= toDateTime({from}) AND {column} <= toDateTime({to})"),
        );
    }
    out
}

/// (dashboard file, panel title, rawSql) of every panel target.
fn panel_queries() -> Vec<(String, String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut queries = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read dashboard");
        let json: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for panel in json["panels"].as_array().expect("panels") {
            assert_eq!(
                panel["datasource"]["type"], "grafana-clickhouse-datasource",
                "{name}"
            );
            for target in panel["targets"].as_array().expect("targets") {
                let sql = target["rawSql"].as_str().expect("rawSql").to_owned();
                queries.push((
                    name.clone(),
                    panel["title"].as_str().unwrap_or("").to_owned(),
                    sql,
                ));
            }
        }
    }
    queries
}

#[tokio::test]
async fn every_panel_returns_rows_after_a_generated_workload() {
    let queries = panel_queries();
    assert!(
        queries.len() >= 10,
        "expected the full set of panels, found {}",
        queries.len()
    );

    let db = TestDb::new();
    let sink = ClickHouseSink::start(db.config()).expect("start");
    sink.migrate().await.expect("migrate");
    let events = generated_events(21, 20_000);
    sink.write_events(&events).await.expect("write");
    let first: DateTime<Utc> = events.iter().map(|e| e.time).min().expect("events");
    let last: DateTime<Utc> = events.iter().map(|e| e.time).max().expect("events");

    // What the operators and delivery nodes would add next to the raw events.
    let leaderboard = (1..=10)
        .map(|position| LeaderboardSnapshotRow {
            board_id: "program-standard:all".to_owned(),
            snapshot_time: last,
            position,
            user_id: format!("user-{position}"),
            score: f64::from(100 - position),
        })
        .collect();
    sink.write_leaderboard(leaderboard).await.expect("leaderboard");
    let trending = (1..=5)
        .map(|rank| TrendingSnapshotRow {
            window_name: "1h".to_owned(),
            snapshot_time: last,
            rank,
            content_id: format!("project-{rank}"),
            score: 1.0 / f64::from(rank),
        })
        .collect();
    sink.write_trending(trending).await.expect("trending");
    for (i, event) in events.iter().enumerate().take(2_000) {
        let class = ["user", "leaderboard", "trending"][i % 3];
        sink.record_delivery_latency(class, event.time, Duration::from_millis((i % 300) as u64));
    }
    sink.record_dead_letters("missing_field", first, 3);
    sink.record_dead_letters("invalid_field_value", last, 1);
    sink.flush().await.expect("flush");

    let (from, to) = (first.timestamp() - 60, last.timestamp() + 60);
    let client = db.client();
    let mut empty = Vec::new();
    for (file, title, sql) in &queries {
        let expanded = expand_macros(sql, from, to);
        assert!(
            !expanded.contains("$__"),
            "unexpanded macro in {file} / {title}: {expanded}"
        );
        let bytes = client
            .query_raw(&expanded)
            .fetch_bytes("TSV")
            .expect("query")
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{file} / {title} failed: {e}\n{expanded}"));
        if bytes.is_empty() {
            empty.push(format!("{file} / {title}"));
        }
    }
    assert!(empty.is_empty(), "panels without rows: {empty:#?}");
    sink.shutdown(Duration::from_secs(10)).await.expect("shutdown");
}

#[test]
fn macros_expand() {
    let sql = "SELECT 1 FROM t WHERE $__timeFilter(minute) AND x < $__toTime AND $__timeFilter( event_time )";
    assert_eq!(
        expand_macros(sql, 10, 20),
        "SELECT 1 FROM t WHERE minute >= toDateTime(10) AND minute <= toDateTime(20) AND x < toDateTime(20) \
         AND event_time >= toDateTime(10) AND event_time <= toDateTime(20)"
    );
}
