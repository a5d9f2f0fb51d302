//! Every fixture under `schemas/fixtures/` is a valid event of the type its file is named after, and survives a
//! round trip through the canonical JSON.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use std::path::PathBuf;

use social_schemas::{EventType, Limits, parse_event};

fn fixture(ty: EventType) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("{}.json", ty.as_str()));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_type_has_a_valid_fixture_that_round_trips() {
    let limits = Limits::default();
    for ty in EventType::ALL {
        let raw = fixture(ty);
        let event = parse_event(&raw, &limits).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(event.event_type(), ty);
        let json = event.to_json();
        let again = parse_event(&json, &limits).unwrap_or_else(|e| panic!("{ty} canonical: {e}"));
        assert_eq!(again, event, "{ty}: round trip changed the event");
        // Canonical JSON is stable.
        assert_eq!(again.to_json(), json, "{ty}: to_json not stable");
        // The canonical form carries the same data as the fixture (datacontenttype aside).
        let mut original: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        original.as_object_mut().unwrap().remove("datacontenttype");
        let canonical: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            canonical, original,
            "{ty}: canonical JSON differs from the fixture"
        );
    }
}

#[test]
fn partition_keys_follow_the_catalogue() {
    let limits = Limits::default();
    let expected = [
        (EventType::ShareCreated, "user-789"),
        (EventType::ShareEngaged, "share-123456"),
        (EventType::CodeGenerated, "user-123"),
        (EventType::LinkClicked, "ref-123456"),
        (EventType::ConversionStarted, "ref-123456"),
        (EventType::ConversionCompleted, "user-123"),
        (EventType::RewardEarned, "user-123"),
        (EventType::LeaderboardUpdated, "weekly"),
        (EventType::UserRegistered, "user-789"),
        (EventType::ProfileUpdated, "user-789"),
        (EventType::ProjectCreated, "user-789"),
        (EventType::ProjectCompleted, "user-789"),
        (EventType::BidAwarded, "user-555"),
        (EventType::MessageSentSocial, "user-321"),
        (EventType::TestimonialPublished, "user-789"),
        (EventType::TestimonialEngaged, "testimonial-2024"),
    ];
    for (ty, key) in expected {
        let event = parse_event(&fixture(ty), &limits).unwrap();
        assert_eq!(event.partition_key(), key, "{ty}");
    }
}

#[test]
fn fixtures_keep_sample_details() {
    let limits = Limits::default();
    let e = parse_event(&fixture(EventType::ShareCreated), &limits).unwrap();
    let social_schemas::Payload::ShareCreated(p) = &e.payload else {
        panic!("wrong payload")
    };
    let m = p.metadata.as_ref().unwrap();
    assert_eq!(m.image_count, Some(3));
    assert_eq!(e.subject.as_deref(), Some("project-456"));
    let e = parse_event(&fixture(EventType::LinkClicked), &limits).unwrap();
    assert!(e.extensions.contains_key("traceparent"));
}
