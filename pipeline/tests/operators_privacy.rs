//! Privacy: an opted-out (or incognito) user never appears in a public topic's message, snapshot or leaderboard;
//! anonymous referral mode hides the new user from the referrer; private rewards are never broadcast.

mod common;

use common::{event, run_full};
use social_pipeline::operator::output::topics::is_public;
use social_pipeline::operator::{Destination, OperatorConfig};
use social_pipeline::topology::SnapshotStore;
use social_pipeline::window::assigner::MINUTE_MS;
use social_schemas::*;

const START: i64 = 1_767_225_600_000;
/// Every public topic the operators publish on with the default configuration.
const PUBLIC_TOPICS: [&str; 7] = [
    "leaderboard.daily",
    "leaderboard.weekly",
    "leaderboard.monthly",
    "leaderboard.all-time",
    "trending.1h",
    "trending.24h",
    "testimonials.recent",
];

fn privacy(user: &str, s: PrivacySettings) -> ProfileUpdated {
    ProfileUpdated {
        user_id: user.into(),
        display_name: None,
        privacy: Some(s),
        connections: None,
        timestamp: None,
    }
}

fn completed(n: usize, referrer: &str, code: &str) -> ConversionCompleted {
    ConversionCompleted {
        referral_id: code.into(),
        new_user_id: format!("new{n}"),
        referrer_id: referrer.into(),
        program_id: Some("p".into()),
        conversion_type: None,
        reward: None,
        timestamp: None,
    }
}

#[test]
fn hidden_users_never_reach_public_topics() {
    let opted_out = PrivacySettings {
        activity_broadcast: Some(false),
        ..PrivacySettings::default()
    };
    let incognito = PrivacySettings {
        incognito: Some(true),
        private_rewards: Some(true),
        ..PrivacySettings::default()
    };
    let mut events = vec![
        event("p1", START, privacy("optout", opted_out)),
        event("p2", START + 1, privacy("ghost", incognito)),
        event(
            "c1",
            START + 2,
            CodeGenerated {
                code_id: "c-o".into(),
                user_id: "optout".into(),
                program_id: "p".into(),
                timestamp: None,
            },
        ),
        event(
            "c2",
            START + 3,
            CodeGenerated {
                code_id: "c-v".into(),
                user_id: "visible".into(),
                program_id: "p".into(),
                timestamp: None,
            },
        ),
    ];
    for n in 0..30 {
        let t = START + 1_000 + n as i64 * MINUTE_MS;
        let who = ["optout", "ghost", "visible"][n % 3];
        events.push(event(
            &format!("cc{n}"),
            t,
            completed(n, who, if who == "visible" { "c-v" } else { "c-o" }),
        ));
        let share = ShareCreated {
            share_id: format!("s{n}"),
            user_id: who.into(),
            content_type: ContentType::Profile,
            content_id: who.into(),
            platform: Platform::Twitter,
            share_format: None,
            metadata: None,
            timestamp: None,
        };
        events.push(event(&format!("sh{n}"), t + 1, share));
        let subject = ["visible", "optout", "ghost"][n % 3];
        // The subject's project and words about them name them as much as their id.
        let testimonial = TestimonialPublished {
            testimonial_id: format!("t{n}"),
            author_id: who.into(),
            subject_user_id: subject.into(),
            rating: 4,
            project_id: Some(format!("proj-{subject}")),
            excerpt: Some(format!("about {subject}")),
            timestamp: None,
        };
        events.push(event(&format!("tp{n}"), t + 2, testimonial));
        let reward = RewardEarned {
            user_id: who.into(),
            reward_id: format!("r{n}"),
            amount: 50.0,
            kind: RewardType::Cash,
            program_id: None,
            referral_id: None,
            timestamp: None,
        };
        events.push(event(&format!("rw{n}"), t + 3, reward));
    }
    // A privacy change of an uninvolved user mid-stream must not disturb the others.
    let late_optout = PrivacySettings {
        incognito: Some(true),
        ..PrivacySettings::default()
    };
    events.push(event(
        "p3",
        START + 1_000 + 20 * MINUTE_MS,
        privacy("latecomer", late_optout),
    ));

    let batches: Vec<Vec<(u32, Event)>> = events
        .chunks(7)
        .map(|c| c.iter().map(|e| (0, e.clone())).collect())
        .collect();
    let config = OperatorConfig {
        emit_interval_ms: MINUTE_MS,
        ..OperatorConfig::default()
    };
    let (engine, out) = run_full(&config, 1, &batches);

    let hidden = [
        "\"optout\"",
        "\"ghost\"",
        "proj-optout",
        "proj-ghost",
        "about optout",
        "about ghost",
    ];
    let mut public_messages = 0;
    let mut showing_visible = std::collections::BTreeSet::new();
    for o in &out.outputs {
        if !is_public(&o.message.topic) || o.destination == Destination::Bus {
            continue;
        }
        public_messages += 1;
        let text = serde_json::to_string(&o.message).expect("json");
        for h in hidden {
            assert!(!text.contains(h), "{h} on {}: {text}", o.message.topic);
        }
        assert!(!text.contains("\"rewardId\""), "a reward was broadcast: {text}");
        if text.contains("\"visible\"") {
            showing_visible.insert(o.message.topic.clone());
        }
    }
    assert!(public_messages > 0);
    // The sweep saw every kind of public topic with content in it.
    for topic in PUBLIC_TOPICS {
        assert!(
            showing_visible.contains(topic),
            "no message on {topic} showed the visible user"
        );
    }
    let store = SnapshotStore::default();
    store.apply(out.snapshots.clone());
    for topic in PUBLIC_TOPICS {
        let snapshot = store
            .get(topic)
            .unwrap_or_else(|| panic!("no snapshot of {topic}"));
        let text = snapshot.to_string();
        for h in hidden {
            assert!(!text.contains(h), "{h} in the snapshot of {topic}: {text}");
        }
        // The run ends past every period and window (their snapshots are empty); the messages above showed them.
        if matches!(topic, "leaderboard.all-time" | "testimonials.recent") {
            assert!(
                text.contains("\"visible\""),
                "the visible user is missing from {topic}: {text}"
            );
        }
    }
    let board = engine.graph().leaderboards().top("all-time", START);
    assert_eq!(board, vec![("visible".to_owned(), 10)]);
}

#[test]
fn opting_out_later_removes_the_user_from_leaderboards() {
    let mut events = a_with_three_referrals();
    let out_optout = PrivacySettings {
        activity_broadcast: Some(false),
        ..PrivacySettings::default()
    };
    events.push(event("p", START + 10 * MINUTE_MS, privacy("a", out_optout)));
    let config = OperatorConfig {
        emit_interval_ms: MINUTE_MS,
        ..OperatorConfig::default()
    };
    let batches = vec![events.into_iter().map(|e| (0, e)).collect()];
    let (engine, out) = run_full(&config, 1, &batches);
    assert!(engine.graph().leaderboards().top("all-time", START).is_empty());
    let store = SnapshotStore::default();
    store.apply(out.snapshots);
    for board in ["daily", "weekly", "monthly", "all-time"] {
        let topic = format!("leaderboard.{board}");
        let text = store
            .get(&topic)
            .unwrap_or_else(|| panic!("no snapshot of {topic}"))
            .to_string();
        assert!(!text.contains("\"a\""), "{topic}: {text}");
    }
}

#[test]
fn anonymous_referrals_hide_the_new_user_from_the_referrer() {
    let anonymous = PrivacySettings {
        anonymous_referrals: Some(true),
        ..PrivacySettings::default()
    };
    let events = vec![
        event(
            "c",
            START,
            CodeGenerated {
                code_id: "c".into(),
                user_id: "ref".into(),
                program_id: "p".into(),
                timestamp: None,
            },
        ),
        event("p", START + 1, privacy("newbie", anonymous)),
        event(
            "r",
            START + 2,
            UserRegistered {
                user_id: "newbie".into(),
                role: UserRole::Homeowner,
                referral_code: Some("c".into()),
                display_name: Some("Secret Name".into()),
                timestamp: None,
            },
        ),
        event(
            "cc",
            START + 3,
            ConversionCompleted {
                referral_id: "c".into(),
                new_user_id: "newbie".into(),
                referrer_id: "ref".into(),
                program_id: None,
                conversion_type: None,
                reward: None,
                timestamp: None,
            },
        ),
        // The anonymous user's own project: its id would name them.
        event(
            "b",
            START + 4,
            BidAwarded {
                bid_id: "b".into(),
                project_id: "proj-newbie".into(),
                contractor_id: "builder".into(),
                homeowner_id: "newbie".into(),
                amount: None,
                timestamp: None,
            },
        ),
    ];
    let batches = vec![events.into_iter().map(|e| (0, e)).collect()];
    let (_, out) = run_full(&OperatorConfig::default(), 1, &batches);
    let to_referrer: Vec<_> = out
        .outputs
        .iter()
        .filter(|o| o.message.topic.starts_with("user.ref."))
        .collect();
    assert!(
        to_referrer
            .iter()
            .any(|o| o.message.event_type == "notification.friend.joined")
    );
    assert!(
        to_referrer
            .iter()
            .any(|o| o.message.event_type == "notification.referral.status")
    );
    assert!(
        to_referrer
            .iter()
            .any(|o| o.message.event_type == "notification.collaboration.opportunity")
    );
    for o in to_referrer {
        let text = o.message.data.to_string();
        assert!(
            !text.contains("newbie") && !text.contains("Secret Name"),
            "{text}"
        );
    }
}

/// Code `c` of user `a` and three completed referrals, in one minute from `START`.
fn a_with_three_referrals() -> Vec<Event> {
    let mut events = vec![event(
        "c",
        START,
        CodeGenerated {
            code_id: "c".into(),
            user_id: "a".into(),
            program_id: "p".into(),
            timestamp: None,
        },
    )];
    for n in 0..3 {
        events.push(event(
            &format!("cc{n}"),
            START + 1_000 + n as i64,
            completed(n, "a", "c"),
        ));
    }
    events
}

/// A privacy update older (in event time) than the one already applied never overrides it, whether it arrives
/// within the allowed lateness or after it: the settings do not depend on arrival order.
#[test]
fn an_older_privacy_update_arriving_late_never_overrides_a_newer_one() {
    let opt_out = PrivacySettings {
        activity_broadcast: Some(false),
        ..PrivacySettings::default()
    };
    let opt_in = PrivacySettings {
        activity_broadcast: Some(true),
        ..PrivacySettings::default()
    };
    let config = OperatorConfig {
        emit_interval_ms: MINUTE_MS,
        ..OperatorConfig::default()
    };
    let opted_out_at = START + 3 * config.allowed_lateness_ms;
    for (name, late_at) in [
        ("within the lateness", opted_out_at - 10 * MINUTE_MS),
        ("too late", START + 2_000),
    ] {
        let mut first = a_with_three_referrals();
        first.push(event("out", opted_out_at, privacy("a", opt_out)));
        // Moves the watermark well past the opt-out before the old opt-in comes.
        first.push(event("tick", opted_out_at + 20 * MINUTE_MS, privacy("b", opt_in)));
        let late = vec![event("in-old", late_at, privacy("a", opt_in))];
        let later = vec![event("tock", opted_out_at + 40 * MINUTE_MS, privacy("b", opt_in))];
        let batches: Vec<Vec<(u32, Event)>> = [first, late, later]
            .into_iter()
            .map(|batch| batch.into_iter().map(|e| (0, e)).collect())
            .collect();
        let (engine, out) = run_full(&config, 1, &batches);
        assert!(
            engine.graph().leaderboards().top("all-time", START).is_empty(),
            "{name}: the old opt-in brought the user back"
        );
        let store = SnapshotStore::default();
        store.apply(out.snapshots);
        let text = store.get("leaderboard.all-time").expect("snapshot").to_string();
        assert!(!text.contains("\"a\""), "{name}: {text}");
    }

    // A newer opt-in does bring the user back.
    let mut events = a_with_three_referrals();
    events.push(event("out", START + 10 * MINUTE_MS, privacy("a", opt_out)));
    events.push(event("in-new", START + 20 * MINUTE_MS, privacy("a", opt_in)));
    let batches = vec![events.into_iter().map(|e| (0, e)).collect()];
    let (engine, _) = run_full(&config, 1, &batches);
    assert_eq!(
        engine.graph().leaderboards().top("all-time", START),
        vec![("a".to_owned(), 3)]
    );
}

/// A shared profile is the profile's user: a hidden user's profile never trends, and one already trending leaves
/// the ranking at the next tick after its user opts out.
#[test]
fn a_hidden_users_profile_never_trends() {
    let share_as = |id: &str, t: i64, sharer: &str, content: &str, content_type: ContentType| {
        event(
            id,
            t,
            ShareCreated {
                share_id: id.into(),
                user_id: sharer.into(),
                content_type,
                content_id: content.into(),
                platform: Platform::Twitter,
                share_format: None,
                metadata: None,
                timestamp: None,
            },
        )
    };
    let share = |id: &str, t: i64, sharer: &str, profile_of: &str| {
        share_as(id, t, sharer, profile_of, ContentType::Profile)
    };
    let opt_out = PrivacySettings {
        incognito: Some(true),
        ..PrivacySettings::default()
    };
    let config = OperatorConfig {
        emit_interval_ms: MINUTE_MS,
        ..OperatorConfig::default()
    };
    let events = vec![
        event("p-ghost", START, privacy("ghost", opt_out)),
        // Content ids are free-form: a project whose id is also a user's comes first (its item is a project's).
        share_as("s0", START + 500, "fan", "ghost", ContentType::Project),
        share_as("s00", START + 600, "fan", "late-leaver", ContentType::Project),
        // A public user shares the hidden user's profile, and their own.
        share("s1", START + 1_000, "fan", "ghost"),
        share("s2", START + 2_000, "fan", "fan"),
        share("s3", START + 3_000, "late-leaver", "late-leaver"),
        // Trending for a few minutes, then its user opts out.
        event("p-leaver", START + 5 * MINUTE_MS, privacy("late-leaver", opt_out)),
        share("s4", START + 8 * MINUTE_MS, "fan", "fan"),
    ];
    let batches = vec![events.into_iter().map(|e| (0, e)).collect()];
    let (_, out) = run_full(&config, 1, &batches);
    let trending: Vec<_> = out
        .outputs
        .iter()
        .filter(|o| o.message.topic == "trending.1h")
        .collect();
    assert!(!trending.is_empty());
    let mut leaver_seen = false;
    let mut leaver_gone = false;
    for o in &trending {
        let text = o.message.data.to_string();
        assert!(!text.contains("\"ghost\""), "{text}");
        let shows_leaver = text.contains("\"late-leaver\"");
        if o.message.timestamp.timestamp_millis() < START + 5 * MINUTE_MS {
            leaver_seen |= shows_leaver;
        } else {
            assert!(!shows_leaver, "after the opt-out: {text}");
            leaver_gone = true;
        }
    }
    assert!(leaver_seen, "the profile trended while its user was public");
    assert!(leaver_gone, "a ranking after the opt-out was published");
    let store = SnapshotStore::default();
    store.apply(out.snapshots);
    let text = store.get("trending.1h").expect("snapshot").to_string();
    assert!(!text.contains("ghost") && !text.contains("late-leaver"), "{text}");
}

/// A user who climbs into a ranking between two ticks shows in a snapshot refreshed for another user's privacy
/// change; opting out before the next tick removes them from the snapshots at once, although no published top N
/// held them.
#[test]
fn a_user_shown_by_a_refreshed_snapshot_leaves_it_at_once_on_opting_out() {
    use social_pipeline::operator::{Emitter, Engine};

    let code = |id: &str, user: &str, t: i64| {
        event(
            id,
            t,
            CodeGenerated {
                code_id: id.into(),
                user_id: user.into(),
                program_id: "p".into(),
                timestamp: None,
            },
        )
    };
    let opt_out = PrivacySettings {
        activity_broadcast: Some(false),
        ..PrivacySettings::default()
    };
    let config = OperatorConfig {
        emit_interval_ms: MINUTE_MS,
        ..OperatorConfig::default()
    };
    let mut engine = Engine::new(config, 1).expect("config");
    let mut out = Emitter::default();
    engine.start(&mut out);
    let events = [
        code("cb", "b", START),
        event("ccb", START + 1_000, completed(0, "b", "cb")),
        // The tick at START + 1 min publishes b.
        code("ca", "a", START + 70_000),
        event("cca", START + 71_000, completed(1, "a", "ca")),
        // b opts out: the snapshots are refreshed from the rankings, which now hold a.
        event("pb", START + 72_000, privacy("b", opt_out)),
        event("pa", START + 73_000, privacy("a", opt_out)),
        // Moves the watermark past the opt-outs, not to the next tick.
        event("later", START + 90_000, privacy("c", PrivacySettings::default())),
    ];
    for e in events {
        engine.push(0, e, &mut out);
        engine.advance(&mut out);
    }
    let store = SnapshotStore::default();
    store.apply(out.snapshots.clone());
    for board in ["daily", "weekly", "monthly", "all-time"] {
        let topic = format!("leaderboard.{board}");
        let text = store.get(&topic).expect("snapshot").to_string();
        assert!(
            !text.contains("\"a\"") && !text.contains("\"b\""),
            "{topic}: {text}"
        );
    }
}
