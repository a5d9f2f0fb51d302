//! Property tests of the operator graph against a naive oracle that recomputes each feature from the full event
//! list: for any shuffle of the input within the watermark bound and any batching, the results are the same.
//!
//! Checked against the oracle: referral counters (all-time, daily completions; one message per user and tick),
//! reward progress and tiers, the four leaderboards (each period's top N from its published changes), trending
//! (window counts and membership), engagement finals (per share, content and sharer), grouped engagement alerts,
//! click-flood and self-referral signals, and the notifications (share confirmations, referral status, friends
//! joined, collaboration opportunities, connection changes, share suggestions, testimonial requests); privacy (a
//! hidden user on no public topic) and anonymous referrals (the new user named to no referrer).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{event, run};
use proptest::prelude::*;
use social_pipeline::operator::config::FraudConfig;
use social_pipeline::operator::{Destination, OperatorConfig, Output};
use social_pipeline::window::assigner::{DAY_MS, HOUR_MS, MINUTE_MS};
use social_schemas::*;

const USERS: usize = 6;
/// One code per user, the hidden one included (its conversions must stay off every public topic).
const CODES: usize = 6;
const START: i64 = 1_767_225_600_000; // 2026-01-01
const SPAN: i64 = 2 * DAY_MS;
const BOUND: i64 = 5_000;
const HIDDEN: &str = "u5";
const ANONYMOUS_NEW_USER: &str = "n0";
/// New users n0..n3, each referred through the code of the same number.
const REFERRED: usize = 4;

fn config() -> OperatorConfig {
    OperatorConfig {
        max_out_of_order_ms: BOUND,
        emit_interval_ms: MINUTE_MS,
        fraud: FraudConfig {
            window_ms: 10 * MINUTE_MS,
            click_threshold: 2,
        },
        leaderboard_top_n: 3,
        ..OperatorConfig::default()
    }
}

/// One random activity (time offset from START + 1 s, kind, small indexes).
#[derive(Debug, Clone)]
struct Activity {
    t: i64,
    kind: u8,
    a: usize,
    b: usize,
}

fn activities() -> impl Strategy<Value = Vec<Activity>> {
    prop::collection::vec(
        (0..SPAN, 0u8..12, 0usize..8, 0usize..4).prop_map(|(t, kind, a, b)| Activity { t, kind, a, b }),
        1..120,
    )
}

/// The setup (codes, privacy) at the very start, then the activities.
fn events(acts: &[Activity]) -> Vec<Event> {
    let mut events = Vec::new();
    for c in 0..CODES {
        let p = CodeGenerated {
            code_id: format!("c{c}"),
            user_id: format!("u{}", c % USERS),
            program_id: format!("p{}", c % 2),
            timestamp: None,
        };
        events.push(event(&format!("code{c}"), START + c as i64, p));
    }
    let privacy = |user: &str, s: PrivacySettings| ProfileUpdated {
        user_id: user.into(),
        display_name: None,
        privacy: Some(s),
        connections: None,
        timestamp: None,
    };
    let hide = PrivacySettings {
        activity_broadcast: Some(false),
        ..PrivacySettings::default()
    };
    let anon = PrivacySettings {
        anonymous_referrals: Some(true),
        ..PrivacySettings::default()
    };
    events.push(event("priv0", START + 10, privacy(HIDDEN, hide)));
    events.push(event("priv1", START + 11, privacy(ANONYMOUS_NEW_USER, anon)));
    // New users n0..n3 join through codes c0..c3 (n0 in anonymous referral mode): friends joined, and referred
    // partners of the referrers for collaboration opportunities.
    for b in 0..REFERRED {
        let joined = UserRegistered {
            user_id: format!("n{b}"),
            role: UserRole::Contractor,
            referral_code: Some(format!("c{b}")),
            display_name: Some(format!("Name n{b}")),
            timestamp: None,
        };
        events.push(event(&format!("reg{b}"), START + 20 + b as i64, joined));
    }
    for (n, act) in acts.iter().enumerate() {
        let t = START + 1_000 + act.t;
        let id = format!("e{n}");
        let code = format!("c{}", act.a % CODES);
        let owner = format!("u{}", (act.a % CODES) % USERS);
        let user = format!("u{}", act.a % USERS);
        let payload: Payload = match act.kind {
            0 => LinkClicked {
                referral_id: code,
                source_ip: format!("10.0.0.{}", act.b % 2),
                user_agent: "ua".into(),
                landing_page: None,
                timestamp: None,
            }
            .into(),
            1 => ConversionStarted {
                referral_id: code,
                prospect_id: format!("pr{n}"),
                stage: ConversionStage::SignupStarted,
                timestamp: None,
            }
            .into(),
            2 => ConversionCompleted {
                referral_id: code,
                new_user_id: format!("n{}", act.b),
                referrer_id: owner,
                program_id: None,
                conversion_type: None,
                reward: None,
                timestamp: None,
            }
            .into(),
            3 => RewardEarned {
                user_id: user,
                reward_id: format!("r{n}"),
                amount: (act.b * 10) as f64,
                kind: RewardType::Credit,
                program_id: None,
                referral_id: None,
                timestamp: None,
            }
            .into(),
            4 | 5 => {
                // A share (one in five for friends only, one in five private) and, 1 to 3 minutes later, an
                // engagement on it.
                let visibility = match n % 5 {
                    0 => Some(ShareVisibility::Friends),
                    1 => Some(ShareVisibility::Private),
                    2 => Some(ShareVisibility::Public),
                    _ => None,
                };
                let share = ShareCreated {
                    share_id: format!("s{n}"),
                    user_id: user,
                    content_type: ContentType::Project,
                    content_id: format!("content{}", act.b),
                    platform: Platform::Facebook,
                    share_format: None,
                    metadata: visibility.map(|visibility| ShareMetadata {
                        visibility: Some(visibility),
                        ..ShareMetadata::default()
                    }),
                    timestamp: None,
                };
                events.push(event(&id, t, share));
                let engaged = ShareEngaged {
                    share_id: format!("s{n}"),
                    engagement_type: if act.kind == 4 {
                        EngagementType::Like
                    } else {
                        EngagementType::Comment
                    },
                    engager_info: EngagerInfo::default(),
                    content_id: None,
                    timestamp: None,
                };
                events.push(event(
                    &format!("{id}x"),
                    t + (act.b as i64 + 1) * MINUTE_MS,
                    engaged,
                ));
                continue;
            }
            // Joins through a code; with b = 3 the code's own owner (a self-referral).
            7 => UserRegistered {
                user_id: if act.b == 3 { owner } else { format!("m{n}") },
                role: UserRole::Homeowner,
                referral_code: Some(code),
                display_name: None,
                timestamp: None,
            }
            .into(),
            8 => ProjectCreated {
                project_id: format!("pj{n}"),
                owner_id: user,
                title: "Deck".into(),
                category: None,
                visibility: Some(if act.b % 2 == 0 {
                    ProjectVisibility::Public
                } else {
                    ProjectVisibility::Private
                }),
                timestamp: None,
            }
            .into(),
            9 => ProjectCompleted {
                project_id: format!("pj{n}"),
                owner_id: user,
                contractor_id: format!("n{}", act.b),
                timestamp: None,
            }
            .into(),
            10 => BidAwarded {
                bid_id: format!("bid{n}"),
                project_id: format!("pj{n}"),
                contractor_id: format!("n{}", act.b),
                // Now and then a referred homeowner: here the contractor too, so both parties' notices go to
                // the same referrer.
                homeowner_id: if act.a >= USERS {
                    format!("n{}", act.b)
                } else {
                    user
                },
                amount: None,
                timestamp: None,
            }
            .into(),
            // Connections: added when b is even, removed when odd.
            11 => {
                let other = vec![format!("u{}", act.b)];
                ProfileUpdated {
                    user_id: user,
                    display_name: None,
                    privacy: None,
                    connections: Some(ConnectionChanges {
                        added: (act.b % 2 == 0).then(|| other.clone()),
                        removed: (act.b % 2 == 1).then_some(other),
                    }),
                    timestamp: None,
                }
                .into()
            }
            _ => TestimonialPublished {
                testimonial_id: format!("t{n}"),
                author_id: user,
                subject_user_id: format!("u{}", act.b % USERS),
                rating: 5,
                project_id: None,
                excerpt: None,
                timestamp: None,
            }
            .into(),
        };
        events.push(event(&id, t, payload));
    }
    events
}

/// Arrival order: each event delayed by up to BOUND (so never late), split into batches at `cuts`, spread over
/// two partitions.
fn arrange(events: &[Event], delays: &[i64], cuts: &[usize]) -> Vec<Vec<(u32, Event)>> {
    let mut arrival: Vec<(i64, usize)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e.time.timestamp_millis() + delays.get(i % delays.len().max(1)).copied().unwrap_or(0),
                i,
            )
        })
        .collect();
    arrival.sort();
    let mut batches = vec![Vec::new()];
    for (n, (_, i)) in arrival.into_iter().enumerate() {
        if cuts.contains(&n) {
            batches.push(Vec::new());
        }
        let e = events[i].clone();
        let partition = (e.partition_key().len() % 2) as u32;
        batches.last_mut().expect("one batch").push((partition, e));
    }
    batches
}

/// Outputs sent on arrival (order may differ between runs; compared as sets).
fn on_arrival(o: &Output) -> bool {
    matches!(
        o.message.event_type.as_str(),
        "notification.share.confirmed"
            | "notification.reward.earned"
            | "notification.share.suggested"
            | "notification.testimonial.requested"
    )
}

fn split(outputs: &[Output]) -> (Vec<String>, BTreeSet<String>) {
    let line = |o: &Output| serde_json::to_string(o).expect("serializable");
    let ordered = outputs.iter().filter(|o| !on_arrival(o)).map(line).collect();
    let arrival = outputs.iter().filter(|o| on_arrival(o)).map(line).collect();
    (ordered, arrival)
}

fn counts_of(e: &Event, owner_of_code: &dyn Fn(&str) -> String) -> Option<(String, &'static str)> {
    match &e.payload {
        Payload::LinkClicked(p) => Some((owner_of_code(&p.referral_id), "click")),
        Payload::ConversionStarted(p) => Some((owner_of_code(&p.referral_id), "conversionsStarted")),
        Payload::ConversionCompleted(p) => Some((p.referrer_id.clone(), "conversionsCompleted")),
        Payload::RewardEarned(p) => Some((p.user_id.clone(), "rewards")),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn shuffles_and_batchings_give_the_same_results(
        acts in activities(),
        delays_a in prop::collection::vec(0..=BOUND, 1..50),
        delays_b in prop::collection::vec(0..=BOUND, 1..50),
        cuts_a in prop::collection::vec(0usize..300, 0..30),
        cuts_b in prop::collection::vec(0usize..300, 0..30),
    ) {
        let events = events(&acts);
        let config = config();
        let (engine_a, out_a) = run(&config, 2, &arrange(&events, &delays_a, &cuts_a));
        let (_, out_b) = run(&config, 2, &arrange(&events, &delays_b, &cuts_b));
        prop_assert_eq!(engine_a.stats().late + engine_a.stats().too_late, 0);
        let (ordered_a, arrival_a) = split(&out_a);
        let (ordered_b, arrival_b) = split(&out_b);
        prop_assert_eq!(ordered_a, ordered_b, "ordered outputs differ between shuffles");
        prop_assert_eq!(arrival_a, arrival_b, "on-arrival outputs differ between shuffles");
        check_against_oracle(&events, &engine_a, &out_a)?;
    }
}

fn check_against_oracle(
    events: &[Event],
    engine: &social_pipeline::operator::Engine,
    outputs: &[Output],
) -> Result<(), TestCaseError> {
    let owner_of_code = |c: &str| -> String {
        let n: usize = c.trim_start_matches('c').parse().unwrap_or(0);
        format!("u{}", n % USERS)
    };
    // Ids are unique.
    let ids: BTreeSet<&str> = outputs.iter().map(|o| o.message.id.as_str()).collect();
    prop_assert_eq!(ids.len(), outputs.len(), "duplicate message ids");

    // Counters, all-time: the last message per user carries the oracle's totals.
    let mut all_time: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut clicks_per_window: BTreeMap<(String, String, i64), u64> = BTreeMap::new();
    for e in events {
        if let Some((user, what)) = counts_of(e, &owner_of_code) {
            *all_time.entry(user).or_default().entry(what).or_default() += 1;
        }
        if let Payload::LinkClicked(p) = &e.payload {
            let w = e.time.timestamp_millis().div_euclid(10 * MINUTE_MS);
            *clicks_per_window
                .entry((p.referral_id.clone(), p.source_ip.clone(), w))
                .or_default() += 1;
        }
    }
    let mut flagged: BTreeMap<String, u64> = BTreeMap::new();
    for ((code, _, _), n) in &clicks_per_window {
        *flagged.entry(owner_of_code(code)).or_default() += n.saturating_sub(2);
    }
    let mut last_counters: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for o in outputs
        .iter()
        .filter(|o| o.message.event_type == "referral.counters.updated")
    {
        let data = o.message.data.to_value();
        let user = data["userId"].as_str().unwrap_or_default().to_owned();
        last_counters.insert(user, data["allTime"].clone());
    }
    prop_assert_eq!(last_counters.len(), all_time.len());
    for (user, expected) in &all_time {
        let got = &last_counters[user];
        let clicks = expected.get("click").copied().unwrap_or(0);
        let flagged = flagged.get(user).copied().unwrap_or(0);
        prop_assert_eq!(
            got["clicks"].as_u64(),
            Some(clicks - flagged),
            "clicks of {}",
            user
        );
        prop_assert_eq!(got["flaggedClicks"].as_u64(), Some(flagged));
        for what in ["conversionsStarted", "conversionsCompleted", "rewards"] {
            prop_assert_eq!(
                got[what].as_u64(),
                Some(expected.get(what).copied().unwrap_or(0)),
                "{} of {}",
                what,
                user
            );
        }
    }

    // Counters, daily: every final result equals the oracle's count over the window.
    for o in outputs
        .iter()
        .filter(|o| o.message.event_type == "referral.counters.updated")
    {
        let data = o.message.data.to_value();
        let user = data["userId"].as_str().unwrap_or_default();
        for w in data["windows"].as_array().into_iter().flatten() {
            if w["status"] != "final" || w["window"] != "daily" {
                continue;
            }
            let start = chrono::DateTime::parse_from_rfc3339(w["start"].as_str().unwrap_or_default())
                .map(|d| d.timestamp_millis())
                .unwrap_or_default();
            let expected = events
                .iter()
                .filter(|e| (start..start + DAY_MS).contains(&e.time.timestamp_millis()))
                .filter_map(|e| counts_of(e, &owner_of_code))
                .filter(|(u, what)| u == user && *what == "conversionsCompleted")
                .count() as u64;
            prop_assert_eq!(w["conversionsCompleted"].as_u64(), Some(expected));
        }
    }

    // Leaderboards of periods (daily, ISO-weekly, monthly): per period, the published changes applied in order from
    // an empty board (keeping the first `size` rows) end at the oracle's top N of that period's completed
    // referrals. A message at tick T under the board's name belongs to the period holding T - 1 (a tick on a
    // boundary closes a period).
    for board in ["daily", "weekly", "monthly"] {
        let mut oracle: BTreeMap<i64, BTreeMap<String, u32>> = BTreeMap::new();
        for e in events {
            if let Payload::ConversionCompleted(p) = &e.payload {
                let period = period_start(board, e.time.timestamp_millis());
                *oracle
                    .entry(period)
                    .or_default()
                    .entry(p.referrer_id.clone())
                    .or_default() += 1;
            }
        }
        let mut published: BTreeMap<i64, BTreeMap<u64, (String, u32)>> = BTreeMap::new();
        let topic = format!("leaderboard.{board}");
        for o in outputs
            .iter()
            .filter(|o| o.message.event_type == "referral.leaderboard.updated" && o.message.topic == topic)
        {
            let data = o.message.data.to_value();
            // A closed period published after its end (the end of input here) is named by its first day.
            let board_id = data["boardId"].as_str().unwrap_or_default();
            let period = match board_id
                .strip_prefix(board)
                .and_then(|rest| rest.strip_prefix('.'))
            {
                Some(day) => chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .expect("dated board id")
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight")
                    .and_utc()
                    .timestamp_millis(),
                None => {
                    prop_assert_eq!(board_id, board);
                    period_start(board, o.message.timestamp.timestamp_millis() - 1)
                }
            };
            let rows = published.entry(period).or_default();
            for change in data["changes"].as_array().into_iter().flatten() {
                let position = change["position"].as_u64().unwrap_or_default();
                let user = change["userId"].as_str().unwrap_or_default().to_owned();
                rows.insert(
                    position,
                    (user, change["completed"].as_u64().unwrap_or_default() as u32),
                );
            }
            let size = data["size"].as_u64().unwrap_or_default();
            rows.retain(|position, _| *position <= size);
        }
        for (period, counts) in &oracle {
            let mut expected: Vec<(String, u32)> = counts
                .iter()
                .filter(|(u, _)| *u != HIDDEN)
                .map(|(u, n)| (u.clone(), *n))
                .collect();
            expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            expected.truncate(3);
            let got: Vec<(String, u32)> = published
                .get(period)
                .map(|rows| rows.values().cloned().collect())
                .unwrap_or_default();
            prop_assert_eq!(got, expected, "{} board of the period at {}", board, period);
        }
        for period in published.keys() {
            prop_assert!(
                oracle.contains_key(period),
                "{} board published for an empty period {}",
                board,
                period
            );
        }
    }

    // Leaderboard, all time: completed referrals of visible users, ties by user id.
    let mut completed: BTreeMap<String, u32> = BTreeMap::new();
    for e in events {
        if let Payload::ConversionCompleted(p) = &e.payload {
            *completed.entry(p.referrer_id.clone()).or_default() += 1;
        }
    }
    let mut expected: Vec<(String, u32)> = completed.into_iter().filter(|(u, _)| u != HIDDEN).collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    expected.truncate(3);
    prop_assert_eq!(engine.graph().leaderboards().top("all-time", 0), expected.clone());
    // The published changes, applied in order, give that top N, counts included (a count that changes without a
    // move is a change too).
    let mut applied: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    for o in outputs.iter().filter(|o| {
        o.message.event_type == "referral.leaderboard.updated" && o.message.topic == "leaderboard.all-time"
    }) {
        let data = o.message.data.to_value();
        for change in data["changes"].as_array().into_iter().flatten() {
            let position = change["position"].as_u64().unwrap_or_default();
            let user = change["userId"].as_str().unwrap_or_default().to_owned();
            applied.insert(position, (user, change["completed"].as_u64().unwrap_or_default()));
        }
    }
    let applied: Vec<(String, u32)> = applied.into_values().map(|(u, n)| (u, n as u32)).collect();
    prop_assert_eq!(applied, expected);

    // Trending: every published count equals the oracle's count of public shares and engagements in the window:
    // neither a hidden user's nor a share for friends only or a private one counts.
    let restricted = |p: &ShareCreated| {
        p.metadata
            .as_ref()
            .and_then(|m| m.visibility)
            .is_some_and(|v| v != ShareVisibility::Public)
    };
    let sharer: BTreeMap<&str, (&str, &str)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::ShareCreated(p) => {
                Some((p.share_id.as_str(), (p.user_id.as_str(), p.content_id.as_str())))
            }
            _ => None,
        })
        .collect();
    let restricted_shares: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::ShareCreated(p) if restricted(p) => Some(p.share_id.as_str()),
            _ => None,
        })
        .collect();
    let trending_events: Vec<(i64, &str)> = events
        .iter()
        .filter_map(|e| {
            let (user, content) = match &e.payload {
                Payload::ShareCreated(p) if !restricted(p) => (p.user_id.as_str(), p.content_id.as_str()),
                Payload::ShareEngaged(p) if !restricted_shares.contains(p.share_id.as_str()) => {
                    *sharer.get(p.share_id.as_str())?
                }
                _ => return None,
            };
            (user != HIDDEN).then_some((e.time.timestamp_millis(), content))
        })
        .collect();
    let windows = config().trending;
    let published = outputs
        .iter()
        .filter(|o| o.message.event_type == "social.trending.updated")
        .count();
    prop_assert!(trending_events.is_empty() || published > 0, "no trending output");
    for o in outputs
        .iter()
        .filter(|o| o.message.event_type == "social.trending.updated")
    {
        let tick = o.message.timestamp.timestamp_millis();
        let window = windows
            .iter()
            .find(|w| o.message.data.to_value()["window"] == w.name.as_str())
            .expect("known window");
        // Counted at `tick`: events before it whose bucket (of `step_ms`) starts at or after `tick - size_ms`.
        let (size, step) = (window.window.size_ms, window.window.step_ms);
        let in_window = |t: i64| t < tick && t.div_euclid(step) * step >= tick - size;
        let data = o.message.data.to_value();
        // Fewer contents than K: the list holds every content counted in the window, by count descending.
        let mut expected_items: Vec<&str> = trending_events
            .iter()
            .filter(|(t, _)| in_window(*t))
            .map(|(_, c)| *c)
            .collect();
        expected_items.sort_unstable();
        expected_items.dedup();
        let mut listed: Vec<&str> = data["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| item["contentId"].as_str().unwrap_or_default())
            .collect();
        let counts: Vec<u64> = data["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| item["count"].as_u64().unwrap_or_default())
            .collect();
        prop_assert!(
            counts.windows(2).all(|w| w[0] >= w[1]),
            "trending not by count: {}",
            data
        );
        listed.sort_unstable();
        prop_assert_eq!(listed, expected_items, "trending items at {}", tick);
        for item in data["items"].as_array().into_iter().flatten() {
            let content = item["contentId"].as_str().unwrap_or_default();
            let expected = trending_events
                .iter()
                .filter(|(t, c)| *c == content && in_window(*t))
                .count() as u64;
            prop_assert_eq!(
                item["count"].as_u64(),
                Some(expected),
                "trending {} at {}",
                content,
                tick
            );
        }
    }

    // Engagement alerts, grouped: at most one per share and tick, to the sharer's own topic; over all of them
    // each share's alerts count every engagement on it, and the summary says so ("2 new likes, 1 new comment").
    let mut alerted: BTreeMap<String, u64> = BTreeMap::new();
    let mut alert_ticks: BTreeSet<(String, i64)> = BTreeSet::new();
    for o in outputs
        .iter()
        .filter(|o| o.message.event_type == "notification.engagement.alert")
    {
        let d = o.message.data.to_value();
        let share = d["shareId"].as_str().unwrap_or_default().to_owned();
        let (sharer, _) = sharer.get(share.as_str()).copied().unwrap_or_default();
        prop_assert_eq!(o.message.topic.clone(), format!("user.{sharer}.social"));
        prop_assert!(
            alert_ticks.insert((share.clone(), o.message.timestamp.timestamp_millis())),
            "two alerts for {} at one tick",
            share
        );
        let (likes, comments) = (d["counts"]["likes"].as_u64(), d["counts"]["comments"].as_u64());
        let mut summary = Vec::new();
        for (n, word) in [(likes, "like"), (comments, "comment")] {
            match n.unwrap_or_default() {
                0 => {}
                1 => summary.push(format!("1 new {word}")),
                n => summary.push(format!("{n} new {word}s")),
            }
        }
        prop_assert_eq!(d["summary"].as_str().unwrap_or_default(), summary.join(", "));
        *alerted.entry(share).or_default() += d["counts"]["total"].as_u64().unwrap_or_default();
    }
    let mut engaged: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        if let Payload::ShareEngaged(p) = &e.payload {
            *engaged.entry(p.share_id.clone()).or_default() += 1;
        }
    }
    prop_assert_eq!(alerted, engaged);

    // Counters are coalesced: at most one message per user and tick.
    let mut counter_ticks: BTreeSet<(String, i64)> = BTreeSet::new();
    for o in outputs
        .iter()
        .filter(|o| o.message.event_type == "referral.counters.updated")
    {
        prop_assert!(
            counter_ticks.insert((o.message.topic.clone(), o.message.timestamp.timestamp_millis())),
            "two counter messages on {} at one tick",
            o.message.topic
        );
    }

    // Engagement: every hourly window with engagements has a final result per share, content and sharer, and
    // its total is the oracle's count of engagements in that window; no other window has one.
    let engagement_keys = |e: &Event| -> Vec<(&'static str, String)> {
        let Payload::ShareEngaged(p) = &e.payload else {
            return Vec::new();
        };
        let (user, content) = sharer.get(p.share_id.as_str()).copied().unwrap_or_default();
        vec![
            ("share", p.share_id.clone()),
            ("content", content.to_owned()),
            ("sharer", user.to_owned()),
        ]
    };
    let mut expected_finals: BTreeMap<(String, String, i64), u64> = BTreeMap::new();
    for e in events {
        let hour = e.time.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
        for (dimension, id) in engagement_keys(e) {
            *expected_finals
                .entry((dimension.to_owned(), id, hour))
                .or_default() += 1;
        }
    }
    let mut finals: BTreeMap<(String, String, i64), u64> = BTreeMap::new();
    for o in outputs
        .iter()
        .filter(|o| o.message.event_type == "social.engagement.updated")
    {
        let d = &o.message.data.to_value();
        if d["status"] != "final" {
            continue;
        }
        let start = chrono::DateTime::parse_from_rfc3339(d["start"].as_str().unwrap_or_default())
            .map(|t| t.timestamp_millis())
            .unwrap_or_default();
        let key = (
            d["dimension"].as_str().unwrap_or_default().to_owned(),
            d["id"].as_str().unwrap_or_default().to_owned(),
            start,
        );
        let total = d["counts"]["total"].as_u64().unwrap_or_default();
        prop_assert!(
            finals.insert(key.clone(), total).is_none(),
            "two finals for {:?}",
            key
        );
    }
    prop_assert_eq!(finals, expected_finals);

    // Reward progress: the last message per (user, program) counts the user's completed referrals there.
    let mut progress: BTreeMap<(String, String), u64> = BTreeMap::new();
    for o in outputs
        .iter()
        .filter(|o| o.message.event_type == "referral.reward.progress")
    {
        let d = &o.message.data.to_value();
        let key = (
            d["userId"].as_str().unwrap_or_default().to_owned(),
            d["programId"].as_str().unwrap_or_default().to_owned(),
        );
        let completed = d["completed"].as_u64().unwrap_or_default();
        // Against the default tiers (thresholds 1, 3, 5, 10, 25): the tier reached and what the next one needs.
        let thresholds = [1u64, 3, 5, 10, 25];
        let level = thresholds.iter().filter(|t| **t <= completed).count() as u64;
        prop_assert_eq!(d["tier"]["level"].as_u64(), (level > 0).then_some(level), "{}", d);
        match thresholds.iter().find(|t| **t > completed) {
            Some(next) => {
                prop_assert_eq!(d["nextTier"]["threshold"].as_u64(), Some(*next), "{}", d);
                prop_assert_eq!(
                    d["nextTier"]["remaining"].as_u64(),
                    Some(next - completed),
                    "{}",
                    d
                );
            }
            None => prop_assert!(d["nextTier"].is_null(), "{}", d),
        }
        progress.insert(key, completed);
    }
    let mut expected_progress: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in events {
        if let Payload::ConversionCompleted(p) = &e.payload {
            let code: usize = p.referral_id.trim_start_matches('c').parse().unwrap_or(0);
            *expected_progress
                .entry((p.referrer_id.clone(), format!("p{}", code % 2)))
                .or_default() += 1;
        }
    }
    prop_assert_eq!(progress, expected_progress);

    // Notifications: one share confirmation per share, one referral status per conversion.
    let shares = events
        .iter()
        .filter(|e| matches!(e.payload, Payload::ShareCreated(_)))
        .count();
    let conversions = events
        .iter()
        .filter(|e| {
            matches!(
                e.payload,
                Payload::ConversionStarted(_) | Payload::ConversionCompleted(_)
            )
        })
        .count();
    prop_assert_eq!(
        outputs
            .iter()
            .filter(|o| o.message.event_type == "notification.share.confirmed")
            .count(),
        shares
    );
    prop_assert_eq!(
        outputs
            .iter()
            .filter(|o| o.message.event_type == "notification.referral.status")
            .count(),
        conversions
    );

    // Registrations through a code: a friend-joined notice to the code's owner, or a self-referral signal when
    // the new user is that owner. Projects: a share suggestion unless private, a testimonial request when
    // completed.
    let mut joined_for: BTreeMap<String, usize> = BTreeMap::new();
    let mut self_referrals = 0;
    let (mut suggestions, mut requests) = (0, 0);
    for e in events {
        match &e.payload {
            Payload::UserRegistered(p) => {
                let referrer = owner_of_code(p.referral_code.as_deref().unwrap_or_default());
                if referrer == p.user_id {
                    self_referrals += 1;
                } else {
                    *joined_for.entry(format!("user.{referrer}.network")).or_default() += 1;
                }
            }
            Payload::ProjectCreated(p) if p.visibility != Some(ProjectVisibility::Private) => {
                suggestions += 1
            }
            Payload::ProjectCompleted(_) => requests += 1,
            _ => {}
        }
    }
    let per_topic = |event_type: &str| -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for o in outputs.iter().filter(|o| o.message.event_type == event_type) {
            *counts.entry(o.message.topic.clone()).or_default() += 1;
        }
        counts
    };
    prop_assert_eq!(per_topic("notification.friend.joined"), joined_for);
    // Connection changes: told to the user, and once to each other user named (not themself) unless the user is
    // hidden.
    let mut connections_for: BTreeMap<String, usize> = BTreeMap::new();
    for e in events {
        let Payload::ProfileUpdated(p) = &e.payload else {
            continue;
        };
        let Some(changes) = &p.connections else { continue };
        *connections_for
            .entry(format!("user.{}.network", p.user_id))
            .or_default() += 1;
        if p.user_id != HIDDEN {
            let others: BTreeSet<&String> = changes
                .added
                .iter()
                .chain(&changes.removed)
                .flatten()
                .filter(|other| **other != p.user_id)
                .collect();
            for other in others {
                *connections_for
                    .entry(format!("user.{other}.network"))
                    .or_default() += 1;
            }
        }
    }
    prop_assert_eq!(per_topic("notification.connection.changed"), connections_for);
    // A partner's referrer is the one of their latest attribution in event time (a registration through a code,
    // or a completed conversion naming them); a bid at the very time of an attribution is left out (ties are
    // ordered by a hash of the ids).
    let attributions = |partner: &str| -> Vec<(i64, String)> {
        events
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::UserRegistered(p) if p.user_id == partner => {
                    let referrer = owner_of_code(p.referral_code.as_deref().unwrap_or_default());
                    (referrer != partner).then_some((e.time.timestamp_millis(), referrer))
                }
                Payload::ConversionCompleted(p) if p.new_user_id == partner && p.referrer_id != partner => {
                    Some((e.time.timestamp_millis(), p.referrer_id.clone()))
                }
                _ => None,
            })
            .collect()
    };
    let mut expected_collaborations: BTreeMap<String, String> = BTreeMap::new();
    let mut ambiguous: BTreeSet<String> = BTreeSet::new();
    for e in events {
        let Payload::BidAwarded(p) = &e.payload else {
            continue;
        };
        let at = e.time.timestamp_millis();
        for (party, role) in [(&p.contractor_id, "contractor"), (&p.homeowner_id, "homeowner")] {
            let key = format!("{}/{role}", p.bid_id);
            let found = attributions(party);
            if found.iter().any(|(t, _)| *t == at) {
                ambiguous.insert(key);
                continue;
            }
            if let Some((_, referrer)) = found.into_iter().filter(|(t, _)| *t < at).max_by_key(|(t, _)| *t) {
                expected_collaborations.insert(key, format!("user.{referrer}.network"));
            }
        }
    }
    let got_collaborations: BTreeMap<String, String> = outputs
        .iter()
        .filter(|o| o.message.event_type == "notification.collaboration.opportunity")
        .map(|o| {
            let data = o.message.data.to_value();
            let key = format!(
                "{}/{}",
                data["bidId"].as_str().unwrap_or_default(),
                data["partnerRole"].as_str().unwrap_or_default()
            );
            (key, o.message.topic.clone())
        })
        .filter(|(bid, _)| !ambiguous.contains(bid))
        .collect();
    prop_assert_eq!(got_collaborations, expected_collaborations);
    prop_assert_eq!(
        outputs
            .iter()
            .filter(|o| o.message.data.to_value()["kind"] == "self_referral")
            .count(),
        self_referrals
    );
    prop_assert_eq!(
        per_topic("notification.share.suggested").values().sum::<usize>(),
        suggestions
    );
    prop_assert_eq!(
        per_topic("notification.testimonial.requested")
            .values()
            .sum::<usize>(),
        requests
    );

    // Fraud: one flood signal per (referral, ip, window) beyond the threshold.
    let floods = clicks_per_window.values().filter(|n| **n > 2).count();
    prop_assert_eq!(
        outputs
            .iter()
            .filter(|o| o.message.data.to_value()["kind"] == "click_flood")
            .count(),
        floods
    );

    // Privacy: the hidden user is on no public topic; the anonymous new user is named to no referrer.
    for o in outputs {
        let text = serde_json::to_string(&o.message.data).unwrap_or_default();
        if o.destination != Destination::Bus
            && social_pipeline::operator::output::topics::is_public(&o.message.topic)
        {
            prop_assert!(
                !text.contains(&format!("\"{HIDDEN}\"")),
                "{} leaked on {}",
                HIDDEN,
                o.message.topic
            );
        }
        if matches!(
            o.message.event_type.as_str(),
            "notification.referral.status"
                | "notification.friend.joined"
                | "notification.collaboration.opportunity"
        ) {
            prop_assert!(
                !text.contains(&format!("\"{ANONYMOUS_NEW_USER}\""))
                    && !text.contains(&format!("Name {ANONYMOUS_NEW_USER}")),
                "anonymous referral leaked"
            );
        }
    }
    Ok(())
}

/// Start of the `board`'s period holding `t`: the UTC day, the ISO week (from Monday) or the UTC calendar month.
fn period_start(board: &str, t: i64) -> i64 {
    let day = t.div_euclid(DAY_MS);
    match board {
        "daily" => day * DAY_MS,
        // 1970-01-01 was a Thursday: Monday is 3 days before a multiple of 7 days from it.
        "weekly" => ((day + 3).div_euclid(7) * 7 - 3) * DAY_MS,
        _ => {
            use chrono::Datelike;
            let date = chrono::DateTime::from_timestamp_millis(t)
                .expect("valid time")
                .date_naive();
            date.with_day(1)
                .expect("day 1")
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp_millis()
        }
    }
}
