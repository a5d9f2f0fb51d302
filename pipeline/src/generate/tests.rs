//! Properties of the generated stream as a whole.

use std::collections::{BTreeMap, BTreeSet};

use chrono::DateTime;
use serde_json::Value;

use super::*;

fn events(config: GeneratorConfig, n: usize) -> Vec<(GeneratedEvent, Value)> {
    Generator::new(config)
        .take(n)
        .map(|e| {
            let v: Value = serde_json::from_slice(&e.json).unwrap();
            (e, v)
        })
        .collect()
}

fn ms(v: &Value) -> i64 {
    DateTime::parse_from_rfc3339(v["time"].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap()
}

fn data<'a>(v: &'a Value, field: &str) -> &'a str {
    v["data"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no data.{field} in {v}"))
}

#[test]
fn same_seed_same_bytes() {
    let run = |seed| {
        let mut out = Vec::new();
        write_ndjson(GeneratorConfig::with_seed(seed), 30_000, &mut out).unwrap();
        out
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_eq!(a.iter().filter(|b| **b == b'\n').count(), 30_000);
    assert_ne!(a, run(8));
}

#[test]
fn every_type_appears_in_20k_events() {
    let mut seen = BTreeMap::new();
    for (_, v) in events(GeneratorConfig::with_seed(1), 20_000) {
        *seen.entry(kind(&v).to_owned()).or_insert(0u32) += 1;
    }
    for t in EVENT_TYPES {
        assert!(seen.contains_key(t), "{t} missing from {seen:?}");
    }
    assert_eq!(seen.len(), 16, "{seen:?}");
}

#[test]
fn envelope_ids_keys_and_times() {
    let config = GeneratorConfig {
        seed: 3,
        source: "/test/gen".into(),
        ..GeneratorConfig::default()
    };
    let mut ids = BTreeSet::new();
    for (e, v) in events(config, 20_000) {
        assert!(!e.json.contains(&b'\n'));
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["source"], "/test/gen");
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("evt-3-"), "{id}");
        assert!(ids.insert(id.to_owned()), "duplicate id {id}");
        let time = v["time"].as_str().unwrap();
        assert!(
            time.ends_with('Z') && time.len() == "2026-01-01T00:00:00.000Z".len(),
            "{time}"
        );
        assert_eq!(v["data"]["timestamp"].as_str(), Some(time));
        let key_field = match kind(&v) {
            "social.share.created"
            | "referral.code.generated"
            | "referral.reward.earned"
            | "user.registered"
            | "user.profile.updated" => "userId",
            "social.share.engaged" => "shareId",
            "referral.link.clicked" | "referral.conversion.started" => "referralId",
            "referral.conversion.completed" => "referrerId",
            "referral.leaderboard.updated" => "boardId",
            "project.created" | "project.completed" => "ownerId",
            "bid.awarded" => "contractorId",
            "message.sent.social" => "senderId",
            "testimonial.published" => "authorId",
            "testimonial.engaged" => "testimonialId",
            other => panic!("unexpected type {other}"),
        };
        assert_eq!(e.key, data(&v, key_field), "{v}");
    }
}

#[test]
fn every_event_validates_against_the_schemas_crate() {
    let limits = social_schemas::Limits::default();
    let config = GeneratorConfig {
        seed: 21,
        ..GeneratorConfig::default()
    };
    let mut types = BTreeSet::new();
    for (e, v) in events(config, 40_000) {
        let parsed = social_schemas::parse_event(&e.json, &limits)
            .unwrap_or_else(|err| panic!("{err:?}: {}", String::from_utf8_lossy(&e.json)));
        assert_eq!(parsed.partition_key(), e.key);
        assert_eq!(parsed.time.timestamp_millis(), ms(&v));
        assert_eq!(parsed.id, v["id"].as_str().unwrap());
        types.insert(kind(&v).to_owned());
    }
    assert_eq!(types.len(), 16);
}

/// A check of the catalogue rules of `docs/EVENTS.md` that does not depend on `social-schemas`: field names
/// (required and allowed), identifier syntax, enumerations and lengths.
#[test]
fn payloads_follow_the_catalogue() {
    fn is_id(s: &str) -> bool {
        (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    }
    const PLATFORMS: &[&str] = &[
        "facebook",
        "twitter",
        "linkedin",
        "instagram",
        "pinterest",
        "whatsapp",
        "email",
        "sms",
        "copy_link",
        "other",
    ];
    const REWARD_TYPES: &[&str] = &["credit", "cash", "discount", "points"];
    // (type, required, optional)
    let catalogue: &[(&str, &[&str], &[&str])] = &[
        (
            "social.share.created",
            &["shareId", "userId", "contentType", "contentId", "platform"],
            &["shareFormat", "metadata"],
        ),
        (
            "social.share.engaged",
            &["shareId", "engagementType", "engagerInfo"],
            &["contentId"],
        ),
        ("referral.code.generated", &["codeId", "userId", "programId"], &[]),
        (
            "referral.link.clicked",
            &["referralId", "sourceIp", "userAgent"],
            &["landingPage"],
        ),
        (
            "referral.conversion.started",
            &["referralId", "prospectId", "stage"],
            &[],
        ),
        (
            "referral.conversion.completed",
            &["referralId", "newUserId", "referrerId"],
            &["programId", "conversionType", "reward"],
        ),
        (
            "referral.reward.earned",
            &["userId", "rewardId", "amount", "type"],
            &["programId", "referralId"],
        ),
        ("referral.leaderboard.updated", &["boardId", "changes"], &[]),
        (
            "user.registered",
            &["userId", "role"],
            &["referralCode", "displayName"],
        ),
        (
            "user.profile.updated",
            &["userId"],
            &["displayName", "privacy", "connections"],
        ),
        (
            "project.created",
            &["projectId", "ownerId", "title"],
            &["category", "visibility"],
        ),
        (
            "project.completed",
            &["projectId", "ownerId", "contractorId"],
            &[],
        ),
        (
            "bid.awarded",
            &["bidId", "projectId", "contractorId", "homeownerId"],
            &["amount"],
        ),
        (
            "message.sent.social",
            &["messageId", "senderId", "recipientId", "context"],
            &["shareId"],
        ),
        (
            "testimonial.published",
            &["testimonialId", "authorId", "subjectUserId", "rating"],
            &["projectId", "excerpt"],
        ),
        (
            "testimonial.engaged",
            &["testimonialId", "engagementType"],
            &["engagerId"],
        ),
    ];
    let envelope: BTreeSet<&str> = [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "data",
    ]
    .into_iter()
    .collect();
    for (e, v) in events(GeneratorConfig::with_seed(11), 30_000) {
        assert!(e.json.len() < 64 * 1024);
        for k in v.as_object().unwrap().keys() {
            assert!(envelope.contains(k.as_str()), "envelope field {k}");
        }
        let t = kind(&v);
        let (_, required, optional) = catalogue.iter().find(|(name, ..)| *name == t).unwrap();
        let d = v["data"].as_object().unwrap();
        for field in *required {
            assert!(d.contains_key(*field), "{t}: missing {field}");
        }
        for (field, value) in d {
            assert!(
                required.contains(&field.as_str())
                    || optional.contains(&field.as_str())
                    || field == "timestamp",
                "{t}: unknown field {field}"
            );
            if field.ends_with("Id") || field == "referralCode" {
                assert!(is_id(value.as_str().unwrap()), "{t}: bad id {field}={value}");
            }
            if let Some(s) = value.as_str() {
                assert!(s.len() <= 2000);
            }
        }
        match t {
            "social.share.created" => {
                assert!(PLATFORMS.contains(&data(&v, "platform")));
                assert!(
                    ["project", "testimonial", "profile", "referral_link", "portfolio"]
                        .contains(&data(&v, "contentType"))
                );
                if let Some(f) = d.get("shareFormat") {
                    assert!(["post", "story", "message", "link"].contains(&f.as_str().unwrap()));
                }
                if let Some(m) = d.get("metadata") {
                    if let Some(vis) = m.get("visibility") {
                        assert!(["public", "friends", "private"].contains(&vis.as_str().unwrap()));
                    }
                    if let Some(n) = m.get("imageCount") {
                        assert!(n.as_u64().unwrap() <= 1000);
                    }
                }
            }
            "social.share.engaged" => {
                assert!(
                    ["like", "comment", "share", "click", "view", "save"]
                        .contains(&data(&v, "engagementType"))
                );
                let info = d["engagerInfo"].as_object().unwrap();
                for (k, x) in info {
                    match k.as_str() {
                        "userId" => assert!(is_id(x.as_str().unwrap())),
                        "platform" => assert!(PLATFORMS.contains(&x.as_str().unwrap())),
                        "displayName" => assert!(x.as_str().unwrap().len() <= 128),
                        other => panic!("engagerInfo.{other}"),
                    }
                }
            }
            "referral.link.clicked" => {
                data(&v, "sourceIp").parse::<std::net::IpAddr>().unwrap();
                assert!(data(&v, "userAgent").len() <= 512);
            }
            "referral.conversion.started" => assert!(
                [
                    "signup_started",
                    "email_verified",
                    "profile_completed",
                    "first_project"
                ]
                .contains(&data(&v, "stage"))
            ),
            "referral.conversion.completed" => {
                assert!(["registration", "first_project", "first_bid"].contains(&data(&v, "conversionType")));
                let reward = &d["reward"];
                assert!(REWARD_TYPES.contains(&reward["type"].as_str().unwrap()));
                assert_eq!(reward["status"], "pending");
                assert!(reward["amount"].as_f64().unwrap() > 0.0);
                DateTime::parse_from_rfc3339(reward["eligibleDate"].as_str().unwrap()).unwrap();
            }
            "referral.reward.earned" => {
                assert!(REWARD_TYPES.contains(&data(&v, "type")));
                assert!(d["amount"].as_f64().unwrap() > 0.0);
            }
            "referral.leaderboard.updated" => {
                let changes = d["changes"].as_array().unwrap();
                assert!(!changes.is_empty() && changes.len() <= 1000);
                for c in changes {
                    assert!(c["position"].as_u64().unwrap() >= 1);
                    assert!(c["delta"].is_i64());
                    assert!(is_id(c["userId"].as_str().unwrap()));
                    assert_eq!(c.as_object().unwrap().len(), 3);
                }
            }
            "user.registered" => assert!(["homeowner", "contractor", "partner"].contains(&data(&v, "role"))),
            "user.profile.updated" => {
                if let Some(p) = d.get("privacy") {
                    let p = p.as_object().unwrap();
                    assert!(!p.is_empty());
                    for (k, x) in p {
                        assert!(
                            [
                                "activityBroadcast",
                                "incognito",
                                "anonymousReferrals",
                                "privateRewards"
                            ]
                            .contains(&k.as_str())
                        );
                        assert!(x.is_boolean());
                    }
                }
                if let Some(c) = d.get("connections") {
                    for (k, list) in c.as_object().unwrap() {
                        assert!(k == "added" || k == "removed");
                        for id in list.as_array().unwrap() {
                            assert!(is_id(id.as_str().unwrap()));
                        }
                    }
                }
            }
            "project.created" => {
                assert!(data(&v, "title").len() <= 200);
                if let Some(vis) = d.get("visibility") {
                    assert!(["public", "private"].contains(&vis.as_str().unwrap()));
                }
            }
            "message.sent.social" => {
                assert!(["share", "referral", "testimonial", "project"].contains(&data(&v, "context")));
                assert_ne!(data(&v, "senderId"), data(&v, "recipientId"));
            }
            "testimonial.published" => assert!((1..=5).contains(&d["rating"].as_u64().unwrap())),
            "testimonial.engaged" => {
                assert!(["like", "comment", "share", "helpful"].contains(&data(&v, "engagementType")))
            }
            _ => {}
        }
    }
}

#[test]
fn disorder_is_bounded() {
    for bound in [0u64, 1_000, 5_000] {
        let config = GeneratorConfig {
            seed: 5,
            max_out_of_order_ms: bound,
            ..GeneratorConfig::default()
        };
        let mut newest = i64::MIN;
        let mut late = 0;
        let mut worst = 0;
        for (_, v) in events(config, 20_000) {
            let t = ms(&v);
            if t < newest {
                late += 1;
                worst = worst.max(newest - t);
            }
            assert!(
                t >= newest.saturating_sub(bound as i64),
                "event {} ms older than one emitted before",
                newest - t
            );
            newest = newest.max(t);
        }
        if bound == 0 {
            assert_eq!(late, 0);
        } else {
            assert!(late > 1_000, "only {late} events out of order with bound {bound}");
            assert!(
                worst > bound as i64 / 2,
                "largest lateness {worst} with bound {bound}"
            );
        }
    }
}

#[test]
fn event_time_follows_the_configured_rate() {
    let config = GeneratorConfig {
        seed: 9,
        events_per_second: 50.0,
        max_out_of_order_ms: 0,
        ..Default::default()
    };
    let all = events(config, 10_000);
    let first = ms(&all[0].1);
    let last = ms(&all[all.len() - 1].1);
    assert!((1_767_225_600_000..1_767_225_600_000 + 1_000).contains(&first));
    // 10 000 events at 50/s: about 200 s.
    let span = (last - first) as f64 / 1_000.0;
    assert!((180.0..220.0).contains(&span), "{span}");
}

#[test]
fn funnel_narrows_and_is_causal() {
    let all = events(GeneratorConfig::with_seed(2), 60_000);
    // Every event whose time is older than the newest one minus the disorder bound was emitted in the sample.
    let complete_before = all.iter().map(|(_, v)| ms(v)).max().unwrap() - 5_000;
    let mut count = BTreeMap::new();
    let mut code_created = BTreeMap::new();
    let mut first_click = BTreeMap::new();
    let mut user_known: BTreeSet<String> = BTreeSet::new();
    let mut by_time: Vec<&Value> = all.iter().map(|(_, v)| v).collect();
    by_time.sort_by_key(|v| ms(v));
    by_time.retain(|v| ms(v) < complete_before);
    for v in by_time {
        let t = ms(v);
        *count.entry(kind(v)).or_insert(0u32) += 1;
        match kind(v) {
            "referral.code.generated" => {
                code_created.insert(data(v, "codeId").to_owned(), (t, data(v, "userId").to_owned()));
            }
            "referral.link.clicked" => {
                let code = data(v, "referralId");
                let (created, _) = code_created.get(code).expect("click on a code never generated");
                assert!(*created <= t);
                first_click.entry(code.to_owned()).or_insert(t);
            }
            "referral.conversion.started" => {
                let clicked = first_click
                    .get(data(v, "referralId"))
                    .expect("conversion without a click");
                assert!(*clicked < t);
            }
            "user.registered" => {
                user_known.insert(data(v, "userId").to_owned());
                if let Some(code) = v["data"]["referralCode"].as_str() {
                    assert!(first_click[code] < t);
                }
            }
            "referral.conversion.completed" => {
                let code = data(v, "referralId");
                assert!(first_click[code] < t);
                let (_, owner) = &code_created[code];
                assert_eq!(data(v, "referrerId"), owner);
                let new_user = data(v, "newUserId");
                assert!(
                    new_user == owner || user_known.contains(new_user),
                    "{new_user} never registered"
                );
            }
            _ => {}
        }
    }
    let n = |t: &str| count.get(t).copied().unwrap_or(0);
    let clicks = n("referral.link.clicked");
    let started = n("referral.conversion.started");
    let completed = n("referral.conversion.completed");
    let rewards = n("referral.reward.earned");
    assert!(
        clicks > started && started > completed && completed > rewards && rewards > 0,
        "{count:?}"
    );
    // Shape of the spec's daily rates: engagements lead, then clicks, shares, conversions started.
    assert!(
        n("social.share.engaged") > clicks && clicks > n("social.share.created"),
        "{count:?}"
    );
    assert!(
        n("social.share.created") > n("referral.code.generated"),
        "{count:?}"
    );
    assert!(completed * 3 < started, "{count:?}");
}

#[test]
fn engagement_follows_shares_and_is_skewed() {
    let all = events(GeneratorConfig::with_seed(4), 60_000);
    let complete_before = all.iter().map(|(_, v)| ms(v)).max().unwrap() - 5_000;
    let mut share_time = BTreeMap::new();
    for (_, v) in &all {
        if kind(v) == "social.share.created" {
            share_time.insert(data(v, "shareId").to_owned(), ms(v));
        }
    }
    let mut per_content: BTreeMap<String, u32> = BTreeMap::new();
    let mut shared_content = BTreeSet::new();
    for (_, v) in &all {
        match kind(v) {
            "social.share.created" => {
                shared_content.insert(data(v, "contentId").to_owned());
            }
            "social.share.engaged" if ms(v) < complete_before => {
                let created = share_time
                    .get(data(v, "shareId"))
                    .expect("engagement of an unknown share");
                assert!(*created < ms(v));
                *per_content.entry(data(v, "contentId").to_owned()).or_insert(0) += 1;
            }
            _ => {}
        }
    }
    let mut counts: Vec<u32> = per_content.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let total: u32 = counts.iter().sum();
    let top = shared_content.len().div_ceil(100);
    let top_sum: u32 = counts.iter().take(top).sum();
    let share = f64::from(top_sum) / f64::from(total);
    assert!(
        share > 0.3,
        "top 1% ({top} of {} items) got {share:.2} of {total} engagements",
        shared_content.len()
    );
}

#[test]
fn population_and_privacy_mix() {
    let all = events(GeneratorConfig::with_seed(6), 60_000);
    let mut roles = BTreeMap::new();
    let mut referred = 0;
    let mut registered = 0;
    let (mut privacy_updates, mut no_broadcast) = (0, 0);
    let mut floods: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut self_referrals = 0;
    for (_, v) in &all {
        match kind(v) {
            "user.registered" => {
                registered += 1;
                *roles.entry(data(v, "role").to_owned()).or_insert(0) += 1;
                referred += u32::from(v["data"].get("referralCode").is_some());
            }
            "user.profile.updated" => {
                if let Some(p) = v["data"].get("privacy") {
                    privacy_updates += 1;
                    no_broadcast += u32::from(p.get("activityBroadcast") == Some(&Value::Bool(false)));
                }
            }
            "referral.link.clicked" => {
                *floods
                    .entry((data(v, "referralId").to_owned(), data(v, "sourceIp").to_owned()))
                    .or_insert(0) += 1;
            }
            "referral.conversion.completed" => {
                self_referrals += u32::from(data(v, "newUserId") == data(v, "referrerId"));
            }
            _ => {}
        }
    }
    let homeowners = f64::from(roles["homeowner"]) / f64::from(registered);
    assert!((0.6..0.8).contains(&homeowners), "{roles:?}");
    assert!(
        roles["partner"] > 0 && roles["contractor"] > roles["partner"],
        "{roles:?}"
    );
    assert!(
        referred > registered / 5 && referred < registered,
        "{referred} of {registered}"
    );
    assert!(
        no_broadcast > 0 && no_broadcast * 5 < privacy_updates,
        "{no_broadcast} of {privacy_updates}"
    );
    let flooded = floods.values().filter(|n| **n >= 40).count();
    assert!((1..=40).contains(&flooded), "{flooded} floods");
    assert!(self_referrals > 0, "no self-referral in 60k events");
}

#[test]
fn write_ndjson_writes_count_lines() {
    let mut out = Vec::new();
    write_ndjson(GeneratorConfig::with_seed(1), 1_000, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1_000);
    assert!(text.ends_with('\n'));
    let first: Vec<GeneratedEvent> = Generator::new(GeneratorConfig::with_seed(1))
        .take(1_000)
        .collect();
    for (line, event) in text.lines().zip(&first) {
        assert_eq!(line.as_bytes(), event.json.as_slice());
    }
}

#[test]
fn tiny_and_odd_configurations_work() {
    for config in [
        GeneratorConfig {
            users: 0,
            programs: 0,
            ..GeneratorConfig::with_seed(1)
        },
        GeneratorConfig {
            users: 1,
            programs: 1,
            events_per_second: -3.0,
            ..GeneratorConfig::with_seed(2)
        },
        GeneratorConfig {
            users: 100,
            programs: 12,
            events_per_second: 100_000.0,
            ..GeneratorConfig::with_seed(3)
        },
    ] {
        let all = events(config, 5_000);
        assert_eq!(all.len(), 5_000);
    }
}

/// `cargo test --release -p social-pipeline generate::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore = "timing; run in release"]
fn throughput() {
    let start = std::time::Instant::now();
    let mut sink = io::sink();
    write_ndjson(GeneratorConfig::with_seed(7), 100_000, &mut sink).unwrap();
    let elapsed = start.elapsed();
    println!("100000 events in {elapsed:?}");
    assert!(elapsed.as_millis() < 1_000);
}
