//! Late data: within the allowed lateness a late event updates its (already final) window and the correction is
//! emitted at once; beyond it the event goes to the late-data side output and the `late events` metric.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{data_of, event};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use social_pipeline::operator::output::LATE_DATA_TOPIC;
use social_pipeline::operator::{Destination, Emitter, Engine, OperatorConfig, Output};
use social_pipeline::window::assigner::{DAY_MS, HOUR_MS, MINUTE_MS};
use social_schemas::{
    CodeGenerated, ContentType, ConversionCompleted, EngagementType, EngagerInfo, LinkClicked, Payload,
    Platform, ShareCreated, ShareEngaged,
};

const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// Counts `pipeline_late_events_total` by kind.
#[derive(Default)]
struct LateRecorder {
    late: Arc<AtomicU64>,
    too_late: Arc<AtomicU64>,
}

impl Recorder for LateRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() != "pipeline_late_events_total" {
            return Counter::noop();
        }
        match key
            .labels()
            .find(|l| l.key() == "kind")
            .map(|l| l.value().to_owned())
            .as_deref()
        {
            Some("late") => Counter::from_arc(self.late.clone()),
            Some("too_late") => Counter::from_arc(self.too_late.clone()),
            _ => Counter::noop(),
        }
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn click(id: &str, t: i64) -> social_schemas::Event {
    let p = LinkClicked {
        referral_id: "c0".into(),
        source_ip: "10.0.0.1".into(),
        user_agent: "ua".into(),
        landing_page: None,
        timestamp: None,
    };
    event(id, t, p)
}

fn completed(id: &str, t: i64) -> social_schemas::Event {
    let p = ConversionCompleted {
        referral_id: "c0".into(),
        new_user_id: format!("new-{id}"),
        referrer_id: "u0".into(),
        program_id: None,
        conversion_type: None,
        reward: None,
        timestamp: None,
    };
    event(id, t, p)
}

fn feed(engine: &mut Engine, events: Vec<social_schemas::Event>) -> Vec<Output> {
    let mut out = Emitter::default();
    for e in events {
        engine.push(0, e, &mut out);
    }
    engine.advance(&mut out);
    out.outputs
}

fn daily_window(outputs: &[Output], status: &str) -> Vec<serde_json::Value> {
    outputs
        .iter()
        .filter(|o| o.message.event_type == "referral.counters.updated")
        .flat_map(|o| match o.message.data.to_value() {
            serde_json::Value::Object(mut data) => match data.remove("windows") {
                Some(serde_json::Value::Array(windows)) => windows,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        })
        .filter(|w| w["window"] == "daily" && w["status"] == status)
        .collect()
}

/// An engine with a 1 s out-of-orderness bound, an hour of allowed lateness and a tick every minute.
fn late_engine() -> Engine {
    let config = OperatorConfig {
        max_out_of_order_ms: 1_000,
        allowed_lateness_ms: HOUR_MS,
        emit_interval_ms: MINUTE_MS,
        ..OperatorConfig::default()
    };
    Engine::new(config, 1).expect("config")
}

#[test]
fn correction_within_lateness_and_side_output_beyond() {
    let recorder = LateRecorder::default();
    let (late, too_late) = (recorder.late.clone(), recorder.too_late.clone());
    metrics::with_local_recorder(&recorder, || {
        let mut engine = late_engine();
        let code = CodeGenerated {
            code_id: "c0".into(),
            user_id: "u0".into(),
            program_id: "p".into(),
            timestamp: None,
        };
        feed(
            &mut engine,
            vec![
                event("code", START, code),
                click("k1", START + 10 * HOUR_MS),
                completed("v1", START + 11 * HOUR_MS),
            ],
        );

        // The next day begins: day 1 is final with one click and one conversion.
        let out = feed(&mut engine, vec![click("k2", START + DAY_MS + 2 * MINUTE_MS)]);
        let finals = daily_window(&out, "final");
        assert_eq!(finals.len(), 1, "{out:#?}");
        assert_eq!(finals[0]["clicks"], 1);
        assert_eq!(utc_day(&finals[0]), "2026-01-01T00:00:00Z");

        // Late by about 2 minutes, within the hour of lateness: corrected at once, revision after the final.
        let out = feed(
            &mut engine,
            vec![
                click("k3", START + DAY_MS - 1_000),
                completed("v2", START + DAY_MS - 500),
            ],
        );
        let corrections = daily_window(&out, "correction");
        assert!(!corrections.is_empty(), "{out:#?}");
        let last = corrections.last().expect("one");
        assert_eq!(last["clicks"], 2);
        assert_eq!(last["conversionsCompleted"], 2, "{last}");
        assert!(last["revision"].as_u64() > finals[0]["revision"].as_u64());
        assert_eq!(engine.stats().late, 2);
        assert_eq!(late.load(Ordering::Relaxed), 2);
        // The closed daily leaderboard is corrected under its dated board id.
        let board = out.iter().find(|o| {
            o.message.event_type == "referral.leaderboard.updated"
                && o.message.data.to_value()["boardId"] == "daily.2026-01-01"
        });
        let board = board.expect("the closed daily board is corrected");
        assert_eq!(board.message.topic, "leaderboard.daily");
        let changes = board.message.data.to_value()["changes"].clone();
        assert_eq!(changes[0]["userId"], "u0", "{changes}");
        assert_eq!(changes[0]["completed"], 2, "{changes}");
        assert_eq!(changes[0]["position"], 1, "{changes}");

        // Two hours later, day 1 is beyond its lateness: the next day-1 event goes to the side output.
        feed(&mut engine, vec![click("k4", START + DAY_MS + 3 * HOUR_MS)]);
        let out = feed(&mut engine, vec![click("k5", START + DAY_MS - 5_000)]);
        let side: Vec<&Output> = out
            .iter()
            .filter(|o| o.destination == Destination::LateData)
            .collect();
        assert_eq!(side.len(), 1, "{out:#?}");
        assert_eq!(side[0].message.topic, LATE_DATA_TOPIC);
        assert_eq!(side[0].message.data.to_value()["id"], "k5");
        assert!(
            daily_window(&out, "correction").is_empty(),
            "a too-late event changes no window"
        );
        assert_eq!(engine.stats().too_late, 1);
        assert_eq!(too_late.load(Ordering::Relaxed), 1);
    });
}

fn utc_day(window: &serde_json::Value) -> String {
    window["start"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn too_late_events_still_update_reference_state() {
    let config = OperatorConfig {
        max_out_of_order_ms: 0,
        allowed_lateness_ms: 0,
        ..OperatorConfig::default()
    };
    let mut engine = Engine::new(config, 1).expect("config");
    feed(&mut engine, vec![click("k1", START + DAY_MS)]);
    let code = CodeGenerated {
        code_id: "c0".into(),
        user_id: "u0".into(),
        program_id: "p".into(),
        timestamp: None,
    };
    let out = feed(&mut engine, vec![event("code", START, code)]);
    assert!(out.iter().any(|o| o.destination == Destination::LateData));
    assert!(
        engine.graph().directory().referrer_of_code("c0").is_some(),
        "attribution kept"
    );
    assert!(matches!(
        Payload::from(social_schemas::CodeGenerated {
            code_id: "x".into(),
            user_id: "y".into(),
            program_id: "z".into(),
            timestamp: None
        }),
        Payload::CodeGenerated(_)
    ));
}

/// Quiet input: the idle flush publishes what the next interval tick would have, so live state is current.
#[test]
fn idle_flush_publishes_coalesced_updates_without_waiting_for_the_next_tick() {
    let mut engine = Engine::new(OperatorConfig::default(), 1).expect("valid config");
    let mut out = Emitter::default();
    engine.start(&mut out);
    // One completed conversion just after a tick boundary: the next tick is almost an interval away.
    engine.push(0, completed("a", START + 10), &mut out);
    engine.push(0, completed("b", START + 6_000), &mut out);
    engine.advance(&mut out);
    let counted = |out: &Emitter| {
        out.snapshots
            .iter()
            .filter(|u| u.topic == "user.u0.referrals" && u.part == "counters")
            .filter_map(|u| u.value.as_ref())
            .map(|v| {
                v.to_value()["allTime"]["conversionsCompleted"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .next_back()
    };
    assert_ne!(
        counted(&out),
        Some(2),
        "not published before the watermark passes a tick"
    );
    engine.flush_idle(&mut out);
    assert_eq!(counted(&out), Some(2), "published by the idle flush");
    let before = out.outputs.len();
    engine.flush_idle(&mut out);
    assert_eq!(
        out.outputs.len(),
        before,
        "a second idle flush at the same time publishes nothing"
    );
}

/// A late visibility change at a period boundary: its own snapshot updates (the leaderboards', then the recent
/// testimonials') come before the corrections it causes, on one thread and on two.
#[test]
fn a_late_events_own_updates_come_before_its_corrections() {
    let day_end = START + DAY_MS;
    for threads in [1, 2] {
        let config = OperatorConfig {
            threads,
            ..OperatorConfig::default()
        };
        let mut engine = Engine::new(config, 1).expect("config");
        let mut out = Emitter::default();
        engine.start(&mut out);
        let testimonial = social_schemas::TestimonialPublished {
            testimonial_id: "t0".into(),
            author_id: "u0".into(),
            subject_user_id: "u9".into(),
            rating: 5,
            project_id: None,
            excerpt: None,
            timestamp: None,
        };
        for e in [
            completed("a", day_end - 10_000),
            event("t", day_end - 9_000, testimonial),
            // Moves the watermark to the end of the day exactly.
            click("k", day_end + 5_001),
        ] {
            engine.push(0, e, &mut out);
        }
        engine.advance(&mut out);
        assert_eq!(engine.watermark(), day_end);
        out.clear();
        let hide = social_schemas::ProfileUpdated {
            user_id: "u0".into(),
            display_name: None,
            privacy: Some(social_schemas::PrivacySettings {
                activity_broadcast: Some(false),
                ..Default::default()
            }),
            connections: None,
            timestamp: None,
        };
        engine.push(0, event("h", day_end - 1_000, hide), &mut out);
        let order: Vec<&str> = out.snapshots.iter().map(|s| s.topic.as_str()).collect();
        let testimonials = order.iter().position(|t| *t == "testimonials.recent");
        let last_board = order.iter().rposition(|t| t.starts_with("leaderboard."));
        assert!(
            testimonials.is_some() && last_board.is_some(),
            "{threads} threads: {order:?}"
        );
        let first_board = order.iter().position(|t| t.starts_with("leaderboard."));
        assert!(
            first_board < testimonials && testimonials < last_board,
            "{threads} threads: the refreshes, then the corrections: {order:?}"
        );
    }
}

/// A like within the allowed lateness on a share whose hourly engagement window was already final: the window's
/// correction (per share, content and sharer) counts it, and the trending windows that cover it count it too.
#[test]
fn a_late_engagement_corrects_its_final_window_and_trending() {
    let mut engine = late_engine();
    feed(
        &mut engine,
        vec![share_s1(START + MINUTE_MS), like_s1("l1", START + 10 * MINUTE_MS)],
    );
    // The next hour: the first hour's windows are final with one like.
    let out = feed(&mut engine, vec![click("k1", START + HOUR_MS + 2 * MINUTE_MS)]);
    let finals: Vec<serde_json::Value> = data_of(&out, "social.engagement.updated")
        .map(|o| o.message.data.to_value())
        .filter(|d| d["status"] == "final")
        .collect();
    assert_eq!(finals.len(), 3, "share, content and sharer: {finals:#?}");
    assert!(finals.iter().all(|d| d["counts"]["likes"] == 1));

    // A like in the first hour, about 17 minutes behind the watermark.
    let out = feed(&mut engine, vec![like_s1("l2", START + 45 * MINUTE_MS)]);
    let corrections: Vec<serde_json::Value> = data_of(&out, "social.engagement.updated")
        .map(|o| o.message.data.to_value())
        .filter(|d| d["status"] == "correction")
        .collect();
    let dimensions: std::collections::BTreeSet<&str> = corrections
        .iter()
        .filter_map(|d| d["dimension"].as_str())
        .collect();
    assert_eq!(
        dimensions,
        ["content", "sharer", "share"].into(),
        "{corrections:#?}"
    );
    assert!(
        corrections.iter().all(|d| d["counts"]["likes"] == 2),
        "{corrections:#?}"
    );
    assert_eq!(engine.stats().late, 1);

    // Trending counts the late like in the windows that cover it, when they next rank (each step of a window:
    // 30 minutes for 24 h).
    let out = feed(
        &mut engine,
        vec![click("k2", START + 2 * HOUR_MS + 5 * MINUTE_MS)],
    );
    let trending: Vec<serde_json::Value> = data_of(&out, "social.trending.updated")
        .map(|o| o.message.data.to_value())
        .collect();
    let count_24h = trending
        .iter()
        .filter(|d| d["window"] == "24h")
        .filter_map(|d| {
            d["items"]
                .as_array()?
                .iter()
                .find(|i| i["contentId"] == "deck")
                .cloned()
        })
        .next_back()
        .expect("trending.24h lists the content");
    assert_eq!(count_24h["count"], 3, "the share and both likes: {trending:#?}");
}

/// Years between two events (one dated far from the others) are not stepped through one tick at a time: ticks
/// go on for a day after the last event (the day's windows close and their finals go out), then stop until the
/// next event. The same output whether the two events come in one batch or two.
#[test]
fn a_gap_of_years_in_event_time_is_not_ticked_through() {
    use social_pipeline::operator::engine::QUIET_TICK_SPAN_MS;
    let later = START + 3 * 365 * DAY_MS;
    let run = |batches: Vec<Vec<social_schemas::Event>>| {
        let mut engine = Engine::new(OperatorConfig::default(), 1).expect("config");
        let mut outputs = Vec::new();
        for batch in batches {
            outputs.extend(feed(&mut engine, batch));
        }
        let mut out = Emitter::default();
        engine.finish(&mut out);
        outputs.extend(out.outputs);
        outputs
    };
    let apart = run(vec![vec![completed("a", START)], vec![completed("b", later)]]);
    let together = run(vec![vec![completed("a", START), completed("b", later)]]);
    let lines = |outputs: &[Output]| -> Vec<String> {
        outputs
            .iter()
            .map(|o| serde_json::to_string(o).expect("json"))
            .collect()
    };
    assert!(
        lines(&apart) == lines(&together),
        "the same output in one batch or two"
    );
    // The first day's window closed within the day after the first event.
    let finals = daily_window(&apart, "final");
    assert!(
        finals
            .iter()
            .any(|w| w["start"] == "2026-01-01T00:00:00Z" && w["conversionsCompleted"] == 1),
        "{finals:?}"
    );
    // Nothing stamped in the quiet years, and both conversions counted.
    let quiet = (START + QUIET_TICK_SPAN_MS + 1)..later;
    assert!(
        !apart
            .iter()
            .any(|o| quiet.contains(&o.message.timestamp.timestamp_millis()))
    );
    let last = data_of(&apart, "referral.counters.updated")
        .last()
        .expect("counters")
        .message
        .data
        .to_value();
    assert_eq!(last["allTime"]["conversionsCompleted"], 2, "{last}");
}

/// The share `s1` of `u1` (content `deck`) at `t`.
fn share_s1(t: i64) -> social_schemas::Event {
    let share = ShareCreated {
        share_id: "s1".into(),
        user_id: "u1".into(),
        content_type: ContentType::Project,
        content_id: "deck".into(),
        platform: Platform::Facebook,
        share_format: None,
        metadata: None,
        timestamp: None,
    };
    event("share", t, share)
}

/// A like of `s1` at `t`.
fn like_s1(id: &str, t: i64) -> social_schemas::Event {
    let engaged = ShareEngaged {
        share_id: "s1".into(),
        engagement_type: EngagementType::Like,
        engager_info: EngagerInfo::default(),
        content_id: None,
        timestamp: None,
    };
    event(id, t, engaged)
}

/// The runner's step after a batch: advance, then flush if the engine says a flush would change anything.
fn advance_and_flush(engine: &mut Engine, events: Vec<social_schemas::Event>) -> Vec<(String, String)> {
    let mut out = Emitter::default();
    for e in events {
        engine.push(0, e, &mut out);
    }
    engine.advance(&mut out);
    if engine.idle_flush_pending() {
        engine.flush_idle(&mut out);
    }
    out.outputs
        .iter()
        .map(|o| (o.message.id.clone(), o.message.data.to_value().to_string()))
        .collect()
}

/// An idle flush, then a checkpoint: the restored engine knows it already ticked at that time, so a late event
/// after the restore is published when the uninterrupted run publishes it (at the next tick), not at once.
#[test]
fn a_restored_engine_does_not_tick_again_where_the_idle_flush_did() {
    let mut engine = Engine::new(OperatorConfig::default(), 1).expect("valid config");
    let mut out = Emitter::default();
    engine.start(&mut out);
    engine.push(0, completed("a", START + 10), &mut out);
    engine.push(0, completed("b", START + 6_000), &mut out);
    engine.advance(&mut out);
    engine.flush_idle(&mut out);
    let mut restored = Engine::restore(OperatorConfig::default(), engine.snapshot()).expect("restore");

    // Behind the idle flush's watermark: late, within the allowed lateness.
    let late = || vec![completed("c", START + 5_000)];
    let uninterrupted = advance_and_flush(&mut engine, late());
    let after_restore = advance_and_flush(&mut restored, late());
    assert_eq!(after_restore, uninterrupted);
    let next = || vec![completed("d", START + 20_000)];
    assert_eq!(
        advance_and_flush(&mut restored, next()),
        advance_and_flush(&mut engine, next())
    );
}

/// An idle flush whose watermark is a regular tick's time runs that tick, then the events at that time, then the
/// idle tick: the alerts of both ticks reach the sharer, each with its own id.
#[test]
fn an_idle_tick_at_a_regular_ticks_time_gives_its_messages_their_own_ids() {
    let interval = OperatorConfig::default().emit_interval_ms;
    let tick = START + 100 * interval;
    let mut engine = Engine::new(OperatorConfig::default(), 1).expect("valid config");
    let mut out = Emitter::default();
    engine.start(&mut out);
    engine.push(0, share_s1(START), &mut out);
    engine.push(0, like_s1("l1", tick - 1_000), &mut out);
    engine.push(0, like_s1("l2", tick), &mut out);
    engine.advance(&mut out);
    engine.flush_idle(&mut out);
    let alerts: Vec<&Output> = out
        .outputs
        .iter()
        .filter(|o| o.message.event_type == "notification.engagement.alert")
        .filter(|o| o.message.timestamp.timestamp_millis() == tick)
        .collect();
    assert_eq!(alerts.len(), 2, "both ticks alert: {alerts:#?}");
    let mut ids: Vec<&str> = out.outputs.iter().map(|o| o.message.id.as_str()).collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "every message has its own id");
}

/// `value` without what counts publications rather than events (`revision`, `previousRank`) and the trending
/// scores (decayed to the time of the ranking that published them).
fn without_publication_details(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(key, _)| !matches!(key.as_str(), "revision" | "previousRank" | "score"))
            .map(|(key, value)| (key, without_publication_details(value)))
            .collect(),
        serde_json::Value::Array(items) => items.into_iter().map(without_publication_details).collect(),
        other => other,
    }
}

/// The code `c0` of `u0` (program `p`), created at `t`.
fn code_c0(t: i64) -> social_schemas::Event {
    let code = CodeGenerated {
        code_id: "c0".into(),
        user_id: "u0".into(),
        program_id: "p".into(),
        timestamp: None,
    };
    event("code", t, code)
}

/// Live state: topic and part to the last value published (`None`: removed).
type LiveState = std::collections::BTreeMap<(String, String), Option<serde_json::Value>>;

/// `u0`'s all-time clicks in `state`.
fn clicks_of_u0(state: &LiveState) -> Option<serde_json::Value> {
    state
        .get(&("user.u0.referrals".to_owned(), "counters".to_owned()))
        .cloned()
        .flatten()
        .map(|counters| counters["allTime"]["clicks"].clone())
}

/// The live state after `batches` (each pushed, then the watermark advanced) and an idle flush: topic and part to
/// the last value published, without publication details.
/// With `restore_before`, the engine is checkpointed (through JSON) and restored before that batch.
fn live_state(batches: Vec<Vec<social_schemas::Event>>, restore_before: Option<usize>) -> LiveState {
    let mut engine = late_engine();
    let mut out = Emitter::default();
    for (index, batch) in batches.into_iter().enumerate() {
        if restore_before == Some(index) {
            let json = serde_json::to_vec(&engine.snapshot()).expect("checkpoint");
            let state = serde_json::from_slice(&json).expect("restored checkpoint");
            engine = Engine::restore(engine.graph().config().clone(), state).expect("restore");
        }
        for e in batch {
            engine.push(0, e, &mut out);
        }
        engine.advance(&mut out);
    }
    // As the pipeline does when input is quiet.
    engine.flush_idle(&mut out);
    out.snapshots
        .into_iter()
        .map(|u| {
            let value = u.value.map(|v| without_publication_details(v.to_value()));
            ((u.topic, u.part), value)
        })
        .collect()
}

/// Late clicks and a late like read before the code or share they name (its event on another partition, say)
/// count once that comes, as they would have in event order; a click from before its code was created never
/// counts. The live state is the one event order gives.
#[test]
fn late_events_wait_for_the_code_or_share_they_name() {
    let code = code_c0(START + 2 * MINUTE_MS);
    let share = share_s1(START + 2 * MINUTE_MS);
    let early_click = click("k0", START + MINUTE_MS);
    let dependents = vec![
        click("k1", START + 3 * MINUTE_MS),
        click("k2", START + 4 * MINUTE_MS),
        like_s1("l1", START + 5 * MINUTE_MS),
    ];
    // Moves the watermark past all of them.
    let clock = completed("w", START + 20 * MINUTE_MS);

    let mut in_order = vec![early_click.clone(), code.clone(), share.clone()];
    in_order.extend(dependents.clone());
    in_order.push(clock.clone());
    let expected = live_state(vec![in_order], None);
    let mut dependents_first = vec![early_click];
    dependents_first.extend(dependents);
    let late = vec![vec![clock], dependents_first, vec![code, share]];

    let counters = expected
        .get(&("user.u0.referrals".to_owned(), "counters".to_owned()))
        .cloned()
        .flatten()
        .expect("counters of u0");
    assert_eq!(counters["allTime"]["clicks"], 2, "{counters}");
    let trending = expected
        .get(&("trending.1h".to_owned(), "items".to_owned()))
        .cloned()
        .flatten()
        .expect("trending.1h");
    assert_eq!(
        trending["items"][0]["count"], 2,
        "the share and the like: {trending}"
    );
    // Waiting events are part of the checkpoint: a restart in between changes nothing.
    for restore_before in [None, Some(2)] {
        let got = live_state(late.clone(), restore_before);
        let differing: Vec<_> = expected
            .iter()
            .filter(|(key, value)| got.get(*key) != Some(*value))
            .map(|(key, value)| (key, value, got.get(key)))
            .collect();
        assert!(
            differing.is_empty(),
            "restored before {restore_before:?}: {differing:#?}"
        );
        assert_eq!(got.len(), expected.len());
    }
}

/// A code whose own event comes too late (more than the allowed lateness behind the watermark) still lets the
/// clicks that waited for it count, when they are within the allowed lateness: in event order they would.
#[test]
fn a_code_read_too_late_releases_the_clicks_that_waited_for_it() {
    let code = code_c0(START + 20 * MINUTE_MS);
    let click = click("k1", START + 62 * MINUTE_MS);
    let clock = completed("w", START + 90 * MINUTE_MS);
    let in_order = live_state(vec![vec![code.clone(), click.clone(), clock.clone()]], None);
    assert_eq!(clicks_of_u0(&in_order), Some(serde_json::json!(1)));
    let late = live_state(vec![vec![clock], vec![click], vec![code]], None);
    assert_eq!(clicks_of_u0(&late), clicks_of_u0(&in_order));
}

/// A late click from before its code was created does not count, even when the code is known by the time it is
/// read: in event order it came first and named no code.
#[test]
fn a_late_click_from_before_its_code_never_counts() {
    let code = code_c0(START + 2 * MINUTE_MS);
    let early_click = click("k0", START + MINUTE_MS);
    let later_click = click("k1", START + 3 * MINUTE_MS);
    let clock = completed("w", START + 20 * MINUTE_MS);
    let in_order = live_state(
        vec![vec![
            early_click.clone(),
            code.clone(),
            later_click.clone(),
            clock.clone(),
        ]],
        None,
    );
    assert_eq!(clicks_of_u0(&in_order), Some(serde_json::json!(1)));
    let late = live_state(vec![vec![code, clock], vec![early_click, later_click]], None);
    assert_eq!(clicks_of_u0(&late), clicks_of_u0(&in_order));
}

/// A late conversion naming no program, from before its code was created, counts under the unknown program even
/// when the code is known by the time it is read: in event order the code did not exist yet.
#[test]
fn a_late_conversion_from_before_its_code_takes_no_program_from_it() {
    let code = code_c0(START + 2 * MINUTE_MS);
    let conversion = completed("early", START + MINUTE_MS);
    let clock = click("k1", START + 20 * MINUTE_MS);
    let in_order = live_state(vec![vec![conversion.clone(), code.clone(), clock.clone()]], None);
    let late = live_state(vec![vec![code, clock], vec![conversion]], None);
    let state_of_u0 = |state: &LiveState| {
        state
            .iter()
            .filter(|((topic, _), _)| topic.starts_with("user.u0."))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect::<Vec<_>>()
    };
    assert!(!state_of_u0(&in_order).is_empty());
    assert_eq!(state_of_u0(&late), state_of_u0(&in_order));
}
