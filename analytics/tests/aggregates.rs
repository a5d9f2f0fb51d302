//! Generated events (with replays) through the sink into the real server: the stored per-minute aggregates equal
//! a recomputation in SQL from the deduplicated raw events.

mod common;

use std::time::Duration;

use common::{TestDb, generated_events};
use social_analytics::{ClickHouseSink, verify_aggregates};

/// An event from its CloudEvent JSON.
fn event(json: serde_json::Value) -> social_schemas::Event {
    social_schemas::parse_event(json.to_string().as_bytes(), &social_schemas::Limits::default())
        .expect("valid event")
}

/// The stored aggregates equal their recomputation from the raw events (`context` prefixes the failure).
async fn assert_matches_recomputation(client: &clickhouse::Client, context: &str) {
    if let Err(mismatches) = verify_aggregates(client).await.expect("verify") {
        panic!("{context}aggregates differ from the recomputation: {mismatches:#?}");
    }
}

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

/// A code written after clicks that used it, later than the attribution lateness after the code's own time (the
/// input's partitions are read in turn, so a code's partition can be behind a click's): the clicks' minutes are
/// recomputed and the clicks attributed to the code's program.
#[tokio::test]
async fn clicks_written_before_their_code_are_attributed_when_it_comes() {
    let db = TestDb::new();
    let click = |id: &str, code: &str, time: &str| {
        event(serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/services/web",
            "type": "referral.link.clicked", "time": time,
            "data": {"referralId": code, "sourceIp": "203.0.113.9", "userAgent": "Mozilla/5.0"}
        }))
    };
    let code = |code: &str, program: &str, time: &str| {
        event(serde_json::json!({
            "specversion": "1.0", "id": code, "source": "/services/referrals",
            "type": "referral.code.generated", "time": time,
            "data": {"codeId": code, "userId": "u1", "programId": program}
        }))
    };
    let first = ClickHouseSink::start(db.config()).expect("start");
    first.migrate().await.expect("migrate");
    // Clicks 5 and 50 minutes after the code's time, written (and aggregated) first.
    first
        .write_events(&[
            click("click-1", "code-a", "2026-01-01T10:05:00Z"),
            click("click-2", "code-a", "2026-01-01T10:50:00Z"),
        ])
        .await
        .expect("write");
    first.flush().await.expect("flush");
    first
        .write_events(&[code("code-a", "program-a", "2026-01-01T10:00:00Z")])
        .await
        .expect("write");
    first.flush().await.expect("flush");
    // The same across a restart: the clicks by one process, the code by the next.
    first
        .write_events(&[click("click-3", "code-b", "2026-01-01T11:40:00Z")])
        .await
        .expect("write");
    first.flush().await.expect("flush");
    first.shutdown(Duration::from_secs(10)).await.expect("shutdown");
    let later = ClickHouseSink::start(db.config()).expect("start");
    later.migrate().await.expect("migrate");
    later
        .write_events(&[code("code-b", "program-b", "2026-01-01T11:00:00Z")])
        .await
        .expect("write");
    later.flush().await.expect("flush");

    let client = db.client();
    let attributed = |program: &'static str| {
        let client = client.clone();
        async move {
            client
                .query("SELECT sum(clicks) FROM referral_funnel_1m FINAL WHERE program_id = ?")
                .bind(program)
                .fetch_one::<u64>()
                .await
                .expect("attributed")
        }
    };
    assert_eq!(attributed("program-a").await, 2);
    assert_eq!(attributed("program-b").await, 1);
    assert_matches_recomputation(&client, "").await;
    later.shutdown(Duration::from_secs(10)).await.expect("shutdown");
}

/// A click from before its code was generated never counts for the code's program (as in the live counters),
/// however often its minute is recomputed: before the code is written, after it, and after a replay of the click.
#[tokio::test]
async fn a_click_from_before_its_code_stays_unattributed_across_replays() {
    let db = TestDb::new();
    let click = event(serde_json::json!({
        "specversion": "1.0", "id": "early-click", "source": "/services/web",
        "type": "referral.link.clicked", "time": "2026-01-01T10:00:30Z",
        "data": {"referralId": "code-late", "sourceIp": "203.0.113.9", "userAgent": "Mozilla/5.0"}
    }));
    let later_click = event(serde_json::json!({
        "specversion": "1.0", "id": "later-click", "source": "/services/web",
        "type": "referral.link.clicked", "time": "2026-01-01T10:06:00Z",
        "data": {"referralId": "code-late", "sourceIp": "203.0.113.9", "userAgent": "Mozilla/5.0"}
    }));
    let code = event(serde_json::json!({
        "specversion": "1.0", "id": "code-late", "source": "/services/referrals",
        "type": "referral.code.generated", "time": "2026-01-01T10:05:00Z",
        "data": {"codeId": "code-late", "userId": "u1", "programId": "program-late"}
    }));
    let sink = ClickHouseSink::start(db.config()).expect("start");
    sink.migrate().await.expect("migrate");
    let client = db.client();
    let clicks_of = |program: &'static str| {
        let client = client.clone();
        async move {
            client
                .query("SELECT sum(clicks) FROM referral_funnel_1m FINAL WHERE program_id = ?")
                .bind(program)
                .fetch_one::<u64>()
                .await
                .expect("clicks")
        }
    };
    for (step, batch) in [vec![click.clone()], vec![code, later_click], vec![click]]
        .into_iter()
        .enumerate()
    {
        sink.write_events(&batch).await.expect("write");
        sink.flush().await.expect("flush");
        assert_eq!(
            clicks_of("").await,
            1,
            "step {step}: the early click is unattributed"
        );
        assert_matches_recomputation(&client, &format!("step {step}: ")).await;
    }
    assert_eq!(
        clicks_of("program-late").await,
        1,
        "the click after the code counts"
    );
    sink.shutdown(Duration::from_secs(10)).await.expect("shutdown");
}

/// An engagement counts for its share's content once the share is written, also when it comes after the
/// engagement (until then, for the content it names, if any); one from before the share was created stays with
/// the content it names; replays change nothing.
#[tokio::test]
async fn engagements_naming_only_their_share_count_for_its_content() {
    let db = TestDb::new();
    let engaged = |id: &str, time: &str, content: Option<&str>| {
        let mut data = serde_json::json!({"shareId": "share-1", "engagementType": "like", "engagerInfo": {"userId": "u2"}});
        if let Some(content) = content {
            data["contentId"] = content.into();
        }
        event(serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/services/social",
            "type": "social.share.engaged", "time": time, "data": data
        }))
    };
    let share = event(serde_json::json!({
        "specversion": "1.0", "id": "share-1", "source": "/services/social",
        "type": "social.share.created", "time": "2026-01-01T10:05:00Z",
        "data": {"shareId": "share-1", "userId": "u1", "contentType": "project", "contentId": "project-7",
                 "platform": "facebook"}
    }));
    let early = engaged("like-early", "2026-01-01T10:00:30Z", None);
    let later = engaged("like-later", "2026-01-01T10:07:00Z", None);
    // Naming another content: counts for it until its share is known, then for the share's (the live rule).
    let naming = engaged("like-naming", "2026-01-01T10:08:00Z", Some("other-9"));
    let sink = ClickHouseSink::start(db.config()).expect("start");
    sink.migrate().await.expect("migrate");
    let client = db.client();
    let likes_of = |content: &'static str| {
        let client = client.clone();
        async move {
            client
                .query("SELECT sum(engagements) FROM engagement_1m FINAL WHERE content_id = ?")
                .bind(content)
                .fetch_one::<u64>()
                .await
                .expect("likes")
        }
    };
    // The engagements first (their share's partition is behind), then the share, then a replay of it all.
    let steps = [
        (vec![early.clone(), later.clone(), naming.clone()], [2, 0, 1]),
        (vec![share.clone()], [1, 2, 0]),
        (vec![later, share, naming, early], [1, 2, 0]),
    ];
    for (step, (batch, [without_content, for_project, for_other])) in steps.into_iter().enumerate() {
        sink.write_events(&batch).await.expect("write");
        sink.flush().await.expect("flush");
        assert_eq!(likes_of("").await, without_content, "step {step}");
        assert_eq!(likes_of("project-7").await, for_project, "step {step}");
        assert_eq!(likes_of("other-9").await, for_other, "step {step}");
        assert_matches_recomputation(&client, &format!("step {step}: ")).await;
    }
    sink.shutdown(Duration::from_secs(10)).await.expect("shutdown");
}

/// A share created twice (its content changed): engagements count for the latest creation's content, also after
/// the lookup table's rows are merged, whatever the order the creations were written in.
#[tokio::test]
async fn a_share_created_twice_counts_for_its_latest_content_after_merges() {
    let db = TestDb::new();
    let created = |id: &str, time: &str, content: &str| {
        event(serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/services/social",
            "type": "social.share.created", "time": time,
            "data": {"shareId": "share-2", "userId": "u1", "contentType": "project", "contentId": content,
                     "platform": "facebook"}
        }))
    };
    let sink = ClickHouseSink::start(db.config()).expect("start");
    sink.migrate().await.expect("migrate");
    // The later creation is written first.
    for batch in [
        vec![created("share-2-b", "2026-01-01T10:10:00Z", "project-b")],
        vec![created("share-2-a", "2026-01-01T10:00:00Z", "project-a")],
    ] {
        sink.write_events(&batch).await.expect("write");
        sink.flush().await.expect("flush");
    }
    let client = db.client();
    client
        .query("OPTIMIZE TABLE share_contents FINAL")
        .execute()
        .await
        .expect("merge");
    let engaged = event(serde_json::json!({
        "specversion": "1.0", "id": "like-2", "source": "/services/social",
        "type": "social.share.engaged", "time": "2026-01-01T10:20:00Z",
        "data": {"shareId": "share-2", "engagementType": "like", "engagerInfo": {}}
    }));
    sink.write_events(&[engaged]).await.expect("write");
    sink.flush().await.expect("flush");
    let contents: Vec<String> = client
        .query("SELECT content_id FROM engagement_1m FINAL WHERE engagements > 0")
        .fetch_all()
        .await
        .expect("contents");
    assert_eq!(contents, vec!["project-b".to_owned()]);
    assert_matches_recomputation(&client, "").await;
    sink.shutdown(Duration::from_secs(10)).await.expect("shutdown");
}

/// A code generated twice (for another program): clicks after both count for the latest generation's program,
/// also after the lookup tables' rows are merged, whatever the order the generations were written in.
#[tokio::test]
async fn a_code_generated_twice_counts_for_its_latest_program_after_merges() {
    let db = TestDb::new();
    let generated = |id: &str, time: &str, program: &str| {
        event(serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/services/referrals",
            "type": "referral.code.generated", "time": time,
            "data": {"codeId": "code-2", "userId": "u1", "programId": program}
        }))
    };
    let sink = ClickHouseSink::start(db.config()).expect("start");
    sink.migrate().await.expect("migrate");
    // The later generation is written first.
    for batch in [
        vec![generated("code-2-b", "2026-01-01T10:10:00Z", "program-b")],
        vec![generated("code-2-a", "2026-01-01T10:00:00Z", "program-a")],
    ] {
        sink.write_events(&batch).await.expect("write");
        sink.flush().await.expect("flush");
    }
    let client = db.client();
    for table in ["referral_codes", "referral_code_creations"] {
        client
            .query(&format!("OPTIMIZE TABLE {table} FINAL"))
            .execute()
            .await
            .expect("merge");
    }
    let click = event(serde_json::json!({
        "specversion": "1.0", "id": "click-2", "source": "/services/web",
        "type": "referral.link.clicked", "time": "2026-01-01T10:20:00Z",
        "data": {"referralId": "code-2", "sourceIp": "203.0.113.9", "userAgent": "Mozilla/5.0"}
    }));
    sink.write_events(&[click]).await.expect("write");
    sink.flush().await.expect("flush");
    let programs: Vec<String> = client
        .query("SELECT program_id FROM referral_funnel_1m FINAL WHERE clicks > 0")
        .fetch_all()
        .await
        .expect("programs");
    assert_eq!(programs, vec!["program-b".to_owned()]);
    assert_matches_recomputation(&client, "").await;
    sink.shutdown(Duration::from_secs(10)).await.expect("shutdown");
}

/// Where `raw_events` has its TTL, an event older than it does not make its minute be recomputed from what the
/// TTL left of that minute: the minute keeps its aggregates.
#[tokio::test]
async fn minutes_older_than_the_raw_events_ttl_keep_their_aggregates() {
    let db = TestDb::new();
    let first = ClickHouseSink::start(db.config()).expect("start");
    first.migrate().await.expect("migrate");
    let old = (chrono::Utc::now() - chrono::Duration::days(100)).format("%Y-%m-%dT%H:%M:00Z");
    let share = |id: &str| {
        let json = serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/services/social",
            "type": "social.share.created", "time": old.to_string(),
            "data": {"shareId": id, "userId": "u1", "contentType": "project", "contentId": "c1", "platform": "email"}
        });
        social_schemas::parse_event(json.to_string().as_bytes(), &social_schemas::Limits::default())
            .expect("event")
    };
    first
        .write_events(&[share("s1"), share("s2"), share("s3")])
        .await
        .expect("write");
    first.flush().await.expect("flush");
    first.shutdown(Duration::from_secs(10)).await.expect("shutdown");
    let client = db.client();
    let shares = || async {
        client
            .query("SELECT sum(shares) FROM shares_1m FINAL")
            .fetch_one::<u64>()
            .await
            .expect("shares")
    };
    let ttl_applied: u64 = client
        .query("SELECT count() FROM schema_migrations WHERE version = '0101_raw_events_ttl'")
        .fetch_one()
        .await
        .expect("migrations");
    if ttl_applied > 0 {
        // A server with the TTL from the start: the old minute is never aggregated.
        assert_eq!(shares().await, 0);
        return;
    }
    assert_eq!(shares().await, 3);

    // As on a server where the TTL migration ran and its TTL then deleted the minute's raw events.
    client
        .query(
            "INSERT INTO schema_migrations (version, name, kind, server_version, applied_at) \
             VALUES ('0101_raw_events_ttl', 'raw_events_ttl', 'modern', 'test', now())",
        )
        .execute()
        .await
        .expect("marker");
    client
        .query("ALTER TABLE raw_events DELETE WHERE 1")
        .execute()
        .await
        .expect("delete");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client
        .query("SELECT count() FROM raw_events")
        .fetch_one::<u64>()
        .await
        .expect("count")
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the delete mutation did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let later = ClickHouseSink::start(db.config()).expect("start");
    later.write_events(&[share("s4")]).await.expect("write");
    later.flush().await.expect("flush");
    assert_eq!(shares().await, 3, "the minute keeps its aggregates");
    later.shutdown(Duration::from_secs(10)).await.expect("shutdown");
}
