//! Generated events (with replays) through the sink into the real server: the stored per-minute aggregates equal
//! a recomputation in SQL from the deduplicated raw events.

mod common;

use std::time::Duration;

use common::{TestDb, generated_events};
use social_analytics::{ClickHouseSink, verify_aggregates};

#[tokio::test]
async fn aggregates_equal_recomputation_from_raw_events_despite_replays() {
    let db = TestDb::new();
    let sink = ClickHouseSink::start(db.config()).expect("start");
    sink.migrate().await.expect("migrate");
    let events = generated_events(11, 30_000);

    // First pass in uneven slices, with a checkpoint barrier in the middle.
    for (i, slice) in events.chunks(1_234).enumerate() {
        sink.write_events(slice).await.expect("write");
        if i == 10 {
            sink.flush().await.expect("flush");
        }
    }
    // Replays: a "crash" rewinds to an earlier offset, and one slice is delivered three times.
    sink.write_events(&events[5_000..17_000]).await.expect("replay");
    sink.write_events(&events[20_000..21_000]).await.expect("replay");
    sink.write_events(&events[20_000..21_000]).await.expect("replay");
    sink.flush().await.expect("flush");

    let client = db.client();
    let distinct: u64 = client
        .query("SELECT count() FROM (SELECT source, id FROM raw_events GROUP BY source, id)")
        .fetch_one()
        .await
        .expect("distinct");
    assert_eq!(distinct, events.len() as u64);
    let final_rows: u64 = client
        .query("SELECT count() FROM raw_events FINAL")
        .fetch_one()
        .await
        .expect("final");
    assert_eq!(
        final_rows,
        events.len() as u64,
        "FINAL must deduplicate replayed raw events"
    );

    let counts = match verify_aggregates(&client).await.expect("verify") {
        Ok(counts) => counts,
        Err(mismatches) => panic!("aggregates differ from the recomputation: {mismatches:#?}"),
    };
    assert!(
        counts.funnel_rows > 0 && counts.engagement_rows > 0 && counts.shares_rows > 0,
        "{counts:?}"
    );

    // Clicks are attributed to programs through referral codes.
    let attributed: u64 = client
        .query("SELECT sum(clicks) FROM referral_funnel_1m FINAL WHERE program_id != ''")
        .fetch_one()
        .await
        .expect("attributed");
    assert!(attributed > 0, "no click attributed to a program");

    let stats = sink.stats();
    assert_eq!(stats.buffered_rows, 0);
    assert!(stats.rows_written >= events.len() as u64 + 14_000);
    sink.shutdown(Duration::from_secs(10)).await.expect("shutdown");
}

/// A row an earlier writer stored with a version above this host's clock (its clock ran ahead) does not outrank
/// the recomputations of a later sink: versions go on from the newest stored.
#[tokio::test]
async fn a_later_sink_outranks_versions_from_a_clock_that_ran_ahead() {
    let db = TestDb::new();
    let events = generated_events(12, 5_000);
    let first = ClickHouseSink::start(db.config()).expect("start");
    first.migrate().await.expect("migrate");
    first.write_events(&events).await.expect("write");
    first.flush().await.expect("flush");
    first.shutdown(Duration::from_secs(10)).await.expect("shutdown");

    // A wrong row at a version some thousand years ahead of the clock.
    let client = db.client();
    client
        .query(
            "INSERT INTO shares_1m (minute, platform, content_type, shares, version) \
             SELECT minute, platform, content_type, shares + 999, toUInt64(40000000000000000) \
             FROM shares_1m FINAL LIMIT 1",
        )
        .execute()
        .await
        .expect("insert");
    assert!(verify_aggregates(&client).await.expect("verify").is_err());

    let later = ClickHouseSink::start(db.config()).expect("start");
    later.write_events(&events).await.expect("replay");
    later.flush().await.expect("flush");
    if let Err(mismatches) = verify_aggregates(&client).await.expect("verify") {
        panic!("the later sink's recomputation lost to the stored version: {mismatches:#?}");
    }
    later.shutdown(Duration::from_secs(10)).await.expect("shutdown");
}
