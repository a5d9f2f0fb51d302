//! Dead letters read from their log are counted once, even when a restarted consumer reads them again.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::TestDb;
use social_analytics::ClickHouseSink;

#[tokio::test]
async fn a_dead_letter_read_again_after_a_restart_counts_once() {
    let db = TestDb::new();
    let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    // Two consumer runs (each sink has its own writer id): the second one reads offsets 1-2 again.
    for offsets in [0..3u64, 1..5] {
        let sink = ClickHouseSink::start(db.config()).expect("start");
        sink.migrate().await.expect("migrate");
        for offset in offsets {
            let reason = if offset % 2 == 0 {
                "missing_field"
            } else {
                "invalid_field_value"
            };
            sink.record_dead_letter_at(reason, at, "social-events-dead-letter/0", offset);
        }
        sink.shutdown(Duration::from_secs(10)).await.expect("shutdown");
    }
    let counts: Vec<(String, u64)> = db
        .client()
        .query("SELECT reason, toUInt64(sum(count)) FROM dead_letters FINAL GROUP BY reason ORDER BY reason")
        .fetch_all()
        .await
        .expect("counts");
    assert_eq!(
        counts,
        vec![
            ("invalid_field_value".to_owned(), 2),
            ("missing_field".to_owned(), 3)
        ]
    );
}
