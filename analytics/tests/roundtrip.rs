//! Every row type: insert then select returns equal values. With validation off (required against 18.16) a row
//! struct that does not match its table would read wrong values silently.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use clickhouse::{Row, RowOwned, RowRead, RowWrite};
use common::TestDb;
use social_analytics::migrate::MigrationRecord;
use social_analytics::*;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().expect("time")
}

async fn round_trip<T>(client: &clickhouse::Client, table: &str, order_by: &str, rows: Vec<T>)
where
    T: Row + RowOwned + RowRead + RowWrite + for<'a> Row<Value<'a> = T> + PartialEq + std::fmt::Debug,
{
    let mut insert = client.insert::<T>(table).await.expect("insert");
    for row in &rows {
        insert.write(row).await.expect("write");
    }
    insert.end().await.expect("end");
    let read: Vec<T> = client
        .query(&format!("SELECT ?fields FROM {table} ORDER BY {order_by}"))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("select {table}: {e}"));
    assert_eq!(read, rows, "round trip of {table}");
}

#[tokio::test]
async fn every_row_type_round_trips() {
    let db = TestDb::new();
    let sink = ClickHouseSink::start(db.config()).expect("start");
    sink.migrate().await.expect("migrate");
    let c = db.client();

    let raw = |id: &str, ty: &str, amount: f64| RawEventRow {
        source: "/src/ü".to_owned(),
        id: id.to_owned(),
        event_type: ty.to_owned(),
        event_time: t(1_767_225_661),
        event_time_ms: 1_767_225_661_123,
        ingest_time: t(1_767_225_700),
        partition_key: "user-1".to_owned(),
        user_id: "user-1".to_owned(),
        program_id: "program-a".to_owned(),
        referral_id: "code-9".to_owned(),
        referrer_id: "user-2".to_owned(),
        content_id: "content-3".to_owned(),
        content_type: "project".to_owned(),
        platform: "linkedin".to_owned(),
        engagement_type: "like".to_owned(),
        amount,
        payload: "{\"a\":\"é\\n\"}".to_owned(),
    };
    round_trip(
        &c,
        "raw_events",
        "id",
        vec![
            raw("e1", "referral.code.generated", 0.0),
            raw("e2", "referral.reward.earned", 12.3456),
        ],
    )
    .await;
    // The materialized view filled referral_codes from the code event.
    let codes: Vec<ReferralCodeRow> = c
        .query("SELECT ?fields FROM referral_codes")
        .fetch_all()
        .await
        .expect("codes");
    assert_eq!(
        codes,
        vec![ReferralCodeRow {
            code_id: "code-9".to_owned(),
            program_id: "program-a".to_owned(),
            user_id: "user-1".to_owned(),
            created_time: t(1_767_225_661),
        }]
    );
    c.query("TRUNCATE TABLE referral_codes")
        .execute()
        .await
        .expect("truncate");
    round_trip(
        &c,
        "referral_codes",
        "code_id",
        vec![ReferralCodeRow {
            code_id: "c".to_owned(),
            program_id: "p".to_owned(),
            user_id: "u".to_owned(),
            created_time: t(4_000_000_000),
        }],
    )
    .await;
    round_trip(
        &c,
        "referral_funnel_1m",
        "program_id",
        vec![FunnelRow {
            minute: t(1_767_225_660),
            program_id: "p".to_owned(),
            clicks: 1,
            conversions_started: 2,
            conversions_completed: 3,
            rewards: 4,
            reward_amount: 123_456,
            version: u64::MAX,
        }],
    )
    .await;
    let amount: String = c
        .query("SELECT toString(reward_amount) FROM referral_funnel_1m")
        .fetch_one()
        .await
        .expect("decimal");
    assert_eq!(
        amount, "12.3456",
        "reward_amount is Decimal(18, 4) in units of 1/10000"
    );
    round_trip(
        &c,
        "engagement_1m",
        "content_id",
        vec![EngagementRow {
            minute: t(60),
            content_id: "x".to_owned(),
            engagement_type: "view".to_owned(),
            engagements: 7,
            version: 1,
        }],
    )
    .await;
    round_trip(
        &c,
        "shares_1m",
        "platform",
        vec![SharesRow {
            minute: t(120),
            platform: "sms".to_owned(),
            content_type: "profile".to_owned(),
            shares: 9,
            version: 2,
        }],
    )
    .await;
    round_trip(
        &c,
        "leaderboard_snapshots",
        "position",
        vec![
            LeaderboardSnapshotRow {
                board_id: "b".to_owned(),
                snapshot_time: t(180),
                position: 1,
                user_id: "u1".to_owned(),
                score: 10.5,
            },
            LeaderboardSnapshotRow {
                board_id: "b".to_owned(),
                snapshot_time: t(180),
                position: 2,
                user_id: "u2".to_owned(),
                score: -1.0,
            },
        ],
    )
    .await;
    round_trip(
        &c,
        "trending_snapshots",
        "rank",
        vec![TrendingSnapshotRow {
            window_name: "1h".to_owned(),
            snapshot_time: t(240),
            rank: 1,
            content_id: "c".to_owned(),
            score: 0.25,
        }],
    )
    .await;
    round_trip(
        &c,
        "delivery_latency",
        "le_ms",
        vec![DeliveryLatencyRow {
            minute: t(300),
            node: "n".to_owned(),
            topic_class: "user".to_owned(),
            le_ms: u32::MAX,
            count: 3,
            writer_id: "w".to_owned(),
            seq: 5,
        }],
    )
    .await;
    round_trip(
        &c,
        "dead_letters",
        "reason",
        vec![DeadLetterRow {
            minute: t(360),
            reason: "missing_field".to_owned(),
            count: 4,
            writer_id: "w".to_owned(),
            seq: 6,
        }],
    )
    .await;
    let migrations: Vec<MigrationRecord> = c
        .query("SELECT ?fields FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await
        .expect("schema_migrations");
    assert_eq!(
        migrations.first().map(|m| m.version.as_str()),
        Some("0000_schema_migrations")
    );
    assert_eq!(migrations.first().map(|m| m.kind.as_str()), Some("core"));
    sink.shutdown(std::time::Duration::from_secs(5))
        .await
        .expect("shutdown");
}
