//! Property tests: no input makes `parse_event` panic; generated valid events survive the canonical round trip.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};
use social_schemas::*;

// ---------- arbitrary input ----------

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        select(vec![
            "1.0",
            "social.share.created",
            "2025-03-15T14:30:45Z",
            "user-1",
            "like",
            "facebook"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                select(vec![
                    "specversion",
                    "id",
                    "source",
                    "type",
                    "time",
                    "data",
                    "subject",
                    "shareId",
                    "userId",
                    "metadata",
                    "x",
                    "ext",
                ])
                .prop_map(str::to_owned),
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn fixture_values() -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    EventType::ALL
        .iter()
        .map(|t| {
            serde_json::from_slice(&std::fs::read(dir.join(format!("{}.json", t.as_str()))).unwrap()).unwrap()
        })
        .collect()
}

/// Sets `value` at a random top-level or `data`-level key of a valid fixture.
fn mutated_fixture() -> impl Strategy<Value = Vec<u8>> {
    let fixtures = fixture_values();
    (
        0..fixtures.len(),
        any::<bool>(),
        any::<prop::sample::Index>(),
        arb_json(),
    )
        .prop_map(move |(i, in_data, key, value)| {
            let mut v = fixtures[i].clone();
            let target = if in_data { &mut v["data"] } else { &mut v };
            if let Value::Object(m) = target {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = keys[key.index(keys.len())].clone();
                m.insert(k, value);
            }
            serde_json::to_vec(&v).unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_event(&raw, &Limits::default());
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let raw = serde_json::to_vec(&v).unwrap();
        let _ = parse_event(&raw, &Limits::default());
    }

    #[test]
    fn mutated_fixtures_never_panic_and_accepted_ones_round_trip(raw in mutated_fixture()) {
        let limits = Limits::default();
        if let Ok(e) = parse_event(&raw, &limits) {
            prop_assert_eq!(parse_event(&e.to_json(), &limits), Ok(e));
        }
    }

    #[test]
    fn truncated_fixtures_never_panic(i in 0usize..16, cut in any::<prop::sample::Index>()) {
        let raw = serde_json::to_vec(&fixture_values()[i]).unwrap();
        let cut = cut.index(raw.len());
        prop_assert!(parse_event(&raw[..cut], &Limits::default()).is_err());
    }
}

// ---------- valid events ----------

fn id() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[A-Za-z0-9._:-]{1,24}", 1 => "[A-Za-z0-9._:-]{128}"]
}

fn opt_id() -> impl Strategy<Value = Option<String>> {
    prop::option::of(id())
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..=max.min(40)).prop_map(String::from_iter)
}

fn opt_text(max: usize) -> impl Strategy<Value = Option<String>> {
    prop::option::of(text(max))
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (
        0i64..253_402_300_799,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    )
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap())
}

fn ts() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    prop::option::of(time())
}

fn amount() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..=1e9f64,
        (0u64..100_000_000).prop_map(|c| c as f64 / 100.0),
        Just(0.0),
        Just(1e9)
    ]
}

fn platform() -> impl Strategy<Value = Platform> {
    select(Platform::ALL.to_vec())
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
    ]
}

fn reward_type() -> impl Strategy<Value = RewardType> {
    select(vec![
        RewardType::Credit,
        RewardType::Cash,
        RewardType::Discount,
        RewardType::Points,
    ])
}

fn open_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        text(30).prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        (-1e12..1e12f64).prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        prop::collection::vec(text(10).prop_map(Value::String), 0..3).prop_map(Value::Array),
        Just(json!({"nested": {"k": [1, "two", false]}})),
    ]
}

fn metadata() -> impl Strategy<Value = ShareMetadata> {
    (
        opt_text(2000),
        prop::option::of(0u32..=1000),
        prop::option::of(select(vec![
            ShareVisibility::Public,
            ShareVisibility::Friends,
            ShareVisibility::Private,
        ])),
        prop::collection::btree_map("[a-z][A-Za-z0-9_]{0,12}", open_value(), 0..4),
    )
        .prop_map(|(message, image_count, visibility, extra)| ShareMetadata {
            message,
            image_count,
            visibility,
            extra: extra
                .into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "message" | "imageCount" | "visibility"))
                .collect(),
        })
}

fn payload() -> BoxedStrategy<Payload> {
    let content_type = select(vec![
        ContentType::Project,
        ContentType::Testimonial,
        ContentType::Profile,
        ContentType::ReferralLink,
        ContentType::Portfolio,
    ]);
    let share_format = select(vec![
        ShareFormat::Post,
        ShareFormat::Story,
        ShareFormat::Message,
        ShareFormat::Link,
    ]);
    let engagement = select(vec![
        EngagementType::Like,
        EngagementType::Comment,
        EngagementType::Share,
        EngagementType::Click,
        EngagementType::View,
        EngagementType::Save,
    ]);
    let social = prop_oneof![
        (
            id(),
            id(),
            content_type,
            id(),
            platform(),
            prop::option::of(share_format),
            prop::option::of(metadata()),
            ts()
        )
            .prop_map(
                |(
                    share_id,
                    user_id,
                    content_type,
                    content_id,
                    platform,
                    share_format,
                    metadata,
                    timestamp,
                )| {
                    Payload::ShareCreated(ShareCreated {
                        share_id,
                        user_id,
                        content_type,
                        content_id,
                        platform,
                        share_format,
                        metadata,
                        timestamp,
                    })
                }
            ),
        (
            id(),
            engagement,
            opt_id(),
            prop::option::of(platform()),
            opt_text(128),
            opt_id(),
            ts()
        )
            .prop_map(
                |(share_id, engagement_type, user_id, platform, display_name, content_id, timestamp)| {
                    Payload::ShareEngaged(ShareEngaged {
                        share_id,
                        engagement_type,
                        engager_info: EngagerInfo {
                            user_id,
                            platform,
                            display_name,
                        },
                        content_id,
                        timestamp,
                    })
                }
            ),
    ];
    let stage = select(vec![
        ConversionStage::SignupStarted,
        ConversionStage::EmailVerified,
        ConversionStage::ProfileCompleted,
        ConversionStage::FirstProject,
    ]);
    let conversion_type = select(vec![
        ConversionType::Registration,
        ConversionType::FirstProject,
        ConversionType::FirstBid,
    ]);
    let reward = (
        reward_type(),
        amount(),
        select(vec![
            RewardStatus::Pending,
            RewardStatus::Approved,
            RewardStatus::Paid,
        ]),
        ts(),
    )
        .prop_map(|(kind, amount, status, eligible_date)| Reward {
            kind,
            amount,
            status,
            eligible_date,
        });
    let change = (id(), 1u32.., any::<i64>()).prop_map(|(user_id, position, delta)| LeaderboardChange {
        user_id,
        position,
        delta,
    });
    let referral = prop_oneof![
        (id(), id(), id(), ts()).prop_map(|(code_id, user_id, program_id, timestamp)| {
            Payload::CodeGenerated(CodeGenerated {
                code_id,
                user_id,
                program_id,
                timestamp,
            })
        }),
        (id(), ip(), text(512), opt_text(2000), ts()).prop_map(
            |(referral_id, source_ip, user_agent, landing_page, timestamp)| {
                Payload::LinkClicked(LinkClicked {
                    referral_id,
                    source_ip,
                    user_agent,
                    landing_page,
                    timestamp,
                })
            }
        ),
        (id(), id(), stage, ts()).prop_map(|(referral_id, prospect_id, stage, timestamp)| {
            Payload::ConversionStarted(ConversionStarted {
                referral_id,
                prospect_id,
                stage,
                timestamp,
            })
        }),
        (
            id(),
            id(),
            id(),
            opt_id(),
            prop::option::of(conversion_type),
            prop::option::of(reward),
            ts()
        )
            .prop_map(
                |(referral_id, new_user_id, referrer_id, program_id, conversion_type, reward, timestamp)| {
                    Payload::ConversionCompleted(ConversionCompleted {
                        referral_id,
                        new_user_id,
                        referrer_id,
                        program_id,
                        conversion_type,
                        reward,
                        timestamp,
                    })
                }
            ),
        (id(), id(), amount(), reward_type(), opt_id(), opt_id(), ts()).prop_map(
            |(user_id, reward_id, amount, kind, program_id, referral_id, timestamp)| {
                Payload::RewardEarned(RewardEarned {
                    user_id,
                    reward_id,
                    amount,
                    kind,
                    program_id,
                    referral_id,
                    timestamp,
                })
            }
        ),
        (id(), prop::collection::vec(change, 0..20), ts()).prop_map(|(board_id, changes, timestamp)| {
            Payload::LeaderboardUpdated(LeaderboardUpdated {
                board_id,
                changes,
                timestamp,
            })
        }),
    ];
    let role = select(vec![UserRole::Homeowner, UserRole::Contractor, UserRole::Partner]);
    let privacy = (
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(activity_broadcast, incognito, anonymous_referrals, private_rewards)| PrivacySettings {
                activity_broadcast,
                incognito,
                anonymous_referrals,
                private_rewards,
            },
        );
    let connections = (
        prop::option::of(prop::collection::vec(id(), 0..10)),
        prop::option::of(prop::collection::vec(id(), 0..10)),
    )
        .prop_map(|(added, removed)| ConnectionChanges { added, removed });
    let user = prop_oneof![
        (id(), role, opt_id(), opt_text(128), ts()).prop_map(
            |(user_id, role, referral_code, display_name, timestamp)| {
                Payload::UserRegistered(UserRegistered {
                    user_id,
                    role,
                    referral_code,
                    display_name,
                    timestamp,
                })
            }
        ),
        (
            id(),
            opt_text(128),
            prop::option::of(privacy),
            prop::option::of(connections),
            ts()
        )
            .prop_map(|(user_id, display_name, privacy, connections, timestamp)| {
                Payload::ProfileUpdated(ProfileUpdated {
                    user_id,
                    display_name,
                    privacy,
                    connections,
                    timestamp,
                })
            }),
    ];
    let visibility = select(vec![ProjectVisibility::Public, ProjectVisibility::Private]);
    let context = select(vec![
        MessageContext::Share,
        MessageContext::Referral,
        MessageContext::Testimonial,
        MessageContext::Project,
    ]);
    let t_engagement = select(vec![
        TestimonialEngagementType::Like,
        TestimonialEngagementType::Comment,
        TestimonialEngagementType::Share,
        TestimonialEngagementType::Helpful,
    ]);
    let other = prop_oneof![
        (
            id(),
            id(),
            text(200),
            opt_text(64),
            prop::option::of(visibility),
            ts()
        )
            .prop_map(|(project_id, owner_id, title, category, visibility, timestamp)| {
                Payload::ProjectCreated(ProjectCreated {
                    project_id,
                    owner_id,
                    title,
                    category,
                    visibility,
                    timestamp,
                })
            }),
        (id(), id(), id(), ts()).prop_map(|(project_id, owner_id, contractor_id, timestamp)| {
            Payload::ProjectCompleted(ProjectCompleted {
                project_id,
                owner_id,
                contractor_id,
                timestamp,
            })
        }),
        (id(), id(), id(), id(), prop::option::of(amount()), ts()).prop_map(
            |(bid_id, project_id, contractor_id, homeowner_id, amount, timestamp)| {
                Payload::BidAwarded(BidAwarded {
                    bid_id,
                    project_id,
                    contractor_id,
                    homeowner_id,
                    amount,
                    timestamp,
                })
            }
        ),
        (id(), id(), id(), context, opt_id(), ts()).prop_map(
            |(message_id, sender_id, recipient_id, context, share_id, timestamp)| {
                Payload::MessageSentSocial(MessageSentSocial {
                    message_id,
                    sender_id,
                    recipient_id,
                    context,
                    share_id,
                    timestamp,
                })
            }
        ),
        (id(), id(), id(), 1u8..=5, opt_id(), opt_text(500), ts()).prop_map(
            |(testimonial_id, author_id, subject_user_id, rating, project_id, excerpt, timestamp)| {
                Payload::TestimonialPublished(TestimonialPublished {
                    testimonial_id,
                    author_id,
                    subject_user_id,
                    rating,
                    project_id,
                    excerpt,
                    timestamp,
                })
            }
        ),
        (id(), t_engagement, opt_id(), ts()).prop_map(
            |(testimonial_id, engagement_type, engager_id, timestamp)| {
                Payload::TestimonialEngaged(TestimonialEngaged {
                    testimonial_id,
                    engagement_type,
                    engager_id,
                    timestamp,
                })
            }
        ),
    ];
    prop_oneof![social.boxed(), referral.boxed(), user.boxed(), other.boxed()].boxed()
}

fn extensions() -> impl Strategy<Value = BTreeMap<String, Value>> {
    let value = prop_oneof![
        text(40).prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
    ];
    prop::collection::btree_map("[a-z0-9]{1,12}", value, 0..4).prop_map(|mut m| {
        m.retain(|k, _| {
            ![
                "specversion",
                "id",
                "source",
                "type",
                "time",
                "datacontenttype",
                "subject",
                "data",
            ]
            .contains(&k.as_str())
        });
        m
    })
}

fn event() -> impl Strategy<Value = Event> {
    (
        id(),
        "/[a-z0-9/._-]{0,40}",
        time(),
        prop::option::of(text(256)),
        extensions(),
        payload(),
    )
        .prop_map(|(id, source, time, subject, extensions, payload)| Event {
            id,
            source,
            time,
            subject,
            extensions,
            payload,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn generated_events_round_trip(e in event()) {
        let limits = Limits::default();
        prop_assert_eq!(e.validate(&limits), Ok(()));
        let json = e.to_json();
        let parsed = parse_event(&json, &limits);
        prop_assert_eq!(parsed.as_ref(), Ok(&e));
        prop_assert_eq!(parsed.unwrap().to_json(), json);
    }
}
