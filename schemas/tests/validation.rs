//! One or more cases per validation code; each checks the code and the field path in the message.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

use serde_json::{Value, json};
use social_schemas::{Limits, ValidationCode, ValidationError, parse_event};

fn base() -> Value {
    json!({
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/services/social-sharing",
        "type": "social.share.engaged",
        "time": "2025-03-15T14:30:45Z",
        "data": {
            "shareId": "share-1",
            "engagementType": "like",
            "engagerInfo": { "userId": "user-2", "platform": "twitter" }
        }
    })
}

fn with(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = base();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn event(ty: &str, data: Value) -> Vec<u8> {
    with(|v| {
        v["type"] = json!(ty);
        v["data"] = data;
    })
}

#[track_caller]
fn rejects(raw: &[u8], code: ValidationCode, path: &str) -> ValidationError {
    let e = parse_event(raw, &Limits::default()).expect_err("event should be rejected");
    assert_eq!(e.code, code, "{e}");
    assert!(
        e.message.starts_with(&format!("{path}:")),
        "message `{}` should start with `{path}:`",
        e.message
    );
    e
}

#[test]
fn base_event_is_valid() {
    parse_event(&with(|_| {}), &Limits::default()).unwrap();
}

#[test]
fn event_too_large() {
    let raw = with(|v| v["data"]["engagerInfo"]["displayName"] = json!("x".repeat(100)));
    let limits = Limits {
        max_event_bytes: 64,
        ..Limits::default()
    };
    let e = parse_event(&raw, &limits).unwrap_err();
    assert_eq!(e.code, ValidationCode::EventTooLarge);
    // Checked before parsing: even garbage over the limit is `event_too_large`.
    let e = parse_event(&[b'{'; 100], &limits).unwrap_err();
    assert_eq!(e.code, ValidationCode::EventTooLarge);
}

#[test]
fn malformed_json() {
    for raw in [
        &b"{"[..],
        b"",
        b"{\"id\":}",
        b"{} x",
        b"\xff\xfe",
        b"[1,2",
        b"{\"id\":\"\\ud800\"}",
    ] {
        let e = parse_event(raw, &Limits::default()).unwrap_err();
        assert_eq!(
            e.code,
            ValidationCode::MalformedJson,
            "{:?}: {e}",
            String::from_utf8_lossy(raw)
        );
    }
    // Duplicate attributes are ambiguous: rejected.
    let raw = br#"{"specversion":"1.0","id":"a","id":"b","source":"/s","type":"user.registered","time":"2025-01-01T00:00:00Z","data":{"userId":"u","role":"partner"}}"#;
    rejects(raw, ValidationCode::MalformedJson, "id");
    let raw = br#"{"specversion":"1.0","id":"a","source":"/s","type":"user.registered","time":"2025-01-01T00:00:00Z","data":{"userId":"u","userId":"v","role":"partner"}}"#;
    rejects(raw, ValidationCode::MalformedJson, "data.userId");
}

#[test]
fn not_an_object() {
    for raw in [&b"[]"[..], b"42", b"\"x\"", b"null", b" true "] {
        let e = parse_event(raw, &Limits::default()).unwrap_err();
        assert_eq!(e.code, ValidationCode::NotAnObject, "{e}");
    }
}

#[test]
fn missing_field() {
    for attr in ["specversion", "id", "source", "type", "time", "data"] {
        rejects(
            &with(|v| drop(v.as_object_mut().unwrap().remove(attr))),
            ValidationCode::MissingField,
            attr,
        );
    }
    rejects(
        &with(|v| drop(v["data"].as_object_mut().unwrap().remove("engagementType"))),
        ValidationCode::MissingField,
        "data.engagementType",
    );
    rejects(
        &event(
            "referral.conversion.completed",
            json!({
                "referralId": "r", "newUserId": "n", "referrerId": "u",
                "reward": { "type": "cash", "amount": 5 }
            }),
        ),
        ValidationCode::MissingField,
        "data.reward.status",
    );
}

#[test]
fn invalid_field_type() {
    rejects(
        &with(|v| v["id"] = json!(12)),
        ValidationCode::InvalidFieldType,
        "id",
    );
    rejects(
        &with(|v| v["time"] = json!(null)),
        ValidationCode::InvalidFieldType,
        "time",
    );
    rejects(
        &with(|v| v["subject"] = json!(["a"])),
        ValidationCode::InvalidFieldType,
        "subject",
    );
    rejects(
        &with(|v| v["data"] = json!("x")),
        ValidationCode::InvalidFieldType,
        "data",
    );
    rejects(
        &with(|v| v["traceid"] = json!({"a": 1})),
        ValidationCode::InvalidFieldType,
        "traceid",
    );
    rejects(
        &with(|v| v["data"]["shareId"] = json!(7)),
        ValidationCode::InvalidFieldType,
        "data.shareId",
    );
    rejects(
        &with(|v| v["data"]["engagerInfo"]["platform"] = json!(true)),
        ValidationCode::InvalidFieldType,
        "data.engagerInfo.platform",
    );
    rejects(
        &event(
            "testimonial.published",
            json!({
                "testimonialId": "t", "authorId": "a", "subjectUserId": "s", "rating": 4.5
            }),
        ),
        ValidationCode::InvalidFieldType,
        "data.rating",
    );
    rejects(
        &event(
            "referral.leaderboard.updated",
            json!({
                "boardId": "weekly", "changes": [{"userId": "u", "position": 1, "delta": 0}, {"userId": "v", "position": "2", "delta": 0}]
            }),
        ),
        ValidationCode::InvalidFieldType,
        "data.changes[1].position",
    );
}

#[test]
fn unsupported_specversion() {
    rejects(
        &with(|v| v["specversion"] = json!("0.3")),
        ValidationCode::UnsupportedSpecversion,
        "specversion",
    );
}

#[test]
fn invalid_field_value() {
    rejects(
        &with(|v| v["data"]["engagerInfo"]["platform"] = json!("myspace")),
        ValidationCode::InvalidFieldValue,
        "data.engagerInfo.platform",
    );
    rejects(
        &with(|v| v["data"]["engagementType"] = json!("Like")),
        ValidationCode::InvalidFieldValue,
        "data.engagementType",
    );
    rejects(
        &with(|v| v["source"] = json!("has space")),
        ValidationCode::InvalidFieldValue,
        "source",
    );
    rejects(
        &with(|v| v["source"] = json!("")),
        ValidationCode::InvalidFieldValue,
        "source",
    );
    rejects(
        &with(|v| v["datacontenttype"] = json!("text/plain")),
        ValidationCode::InvalidFieldValue,
        "datacontenttype",
    );
    let reward = |amount: Value| {
        event(
            "referral.reward.earned",
            json!({"userId": "u", "rewardId": "r", "amount": amount, "type": "points"}),
        )
    };
    rejects(
        &reward(json!(-1)),
        ValidationCode::InvalidFieldValue,
        "data.amount",
    );
    rejects(
        &reward(json!(1.5e9)),
        ValidationCode::InvalidFieldValue,
        "data.amount",
    );
    // Valid JSON, but not a finite f64.
    let raw = String::from_utf8(reward(json!(0)))
        .unwrap()
        .replace("\"amount\":0", "\"amount\":1e400");
    rejects(raw.as_bytes(), ValidationCode::InvalidFieldValue, "data.amount");
    let click = |ip: &str| {
        event(
            "referral.link.clicked",
            json!({"referralId": "r", "sourceIp": ip, "userAgent": "ua"}),
        )
    };
    rejects(
        &click("999.1.1.1"),
        ValidationCode::InvalidFieldValue,
        "data.sourceIp",
    );
    parse_event(&click("2001:db8::1"), &Limits::default()).unwrap();
    let rating = |r: i64| {
        event(
            "testimonial.published",
            json!({"testimonialId": "t", "authorId": "a", "subjectUserId": "s", "rating": r}),
        )
    };
    rejects(&rating(0), ValidationCode::InvalidFieldValue, "data.rating");
    rejects(&rating(6), ValidationCode::InvalidFieldValue, "data.rating");
    rejects(&rating(300), ValidationCode::InvalidFieldValue, "data.rating");
    let board = |position: i64| {
        event(
            "referral.leaderboard.updated",
            json!({"boardId": "b", "changes": [{"userId": "u", "position": position, "delta": -3}]}),
        )
    };
    rejects(
        &board(0),
        ValidationCode::InvalidFieldValue,
        "data.changes[0].position",
    );
    let changes: Vec<Value> = (0..1001)
        .map(|i| json!({"userId": "u", "position": i + 1, "delta": 0}))
        .collect();
    rejects(
        &event(
            "referral.leaderboard.updated",
            json!({"boardId": "b", "changes": changes}),
        ),
        ValidationCode::InvalidFieldValue,
        "data.changes",
    );
    let share = |meta: Value| {
        event(
            "social.share.created",
            json!({
                "shareId": "s", "userId": "u", "contentType": "portfolio", "contentId": "c", "platform": "sms", "metadata": meta
            }),
        )
    };
    rejects(
        &share(json!({"imageCount": 1001})),
        ValidationCode::InvalidFieldValue,
        "data.metadata.imageCount",
    );
    rejects(
        &share(json!({"imageCount": -1})),
        ValidationCode::InvalidFieldValue,
        "data.metadata.imageCount",
    );
    rejects(
        &share(json!({"visibility": "secret"})),
        ValidationCode::InvalidFieldValue,
        "data.metadata.visibility",
    );
}

#[test]
fn unknown_field() {
    rejects(
        &with(|v| v["data"]["extra"] = json!(1)),
        ValidationCode::UnknownField,
        "data.extra",
    );
    rejects(
        &with(|v| v["data"]["engagerInfo"]["email"] = json!("a@b.c")),
        ValidationCode::UnknownField,
        "data.engagerInfo.email",
    );
    // Not a valid extension attribute name.
    rejects(
        &with(|v| v["dataBase64"] = json!("x")),
        ValidationCode::UnknownField,
        "dataBase64",
    );
    rejects(
        &with(|v| v["data_base64"] = json!("x")),
        ValidationCode::UnknownField,
        "data_base64",
    );
}

#[test]
fn open_metadata_keeps_unknown_keys() {
    let raw = event(
        "social.share.created",
        json!({
            "shareId": "s", "userId": "u", "contentType": "portfolio", "contentId": "c", "platform": "sms",
            "metadata": {"campaign": "spring", "tags": ["a", "b"], "imageCount": 2}
        }),
    );
    let e = parse_event(&raw, &Limits::default()).unwrap();
    let social_schemas::Payload::ShareCreated(p) = &e.payload else {
        panic!()
    };
    let m = p.metadata.as_ref().unwrap();
    assert_eq!(m.extra["campaign"], json!("spring"));
    assert_eq!(m.image_count, Some(2));
    assert_eq!(parse_event(&e.to_json(), &Limits::default()).unwrap(), e);
}

#[test]
fn invalid_id() {
    rejects(
        &with(|v| v["id"] = json!("has space")),
        ValidationCode::InvalidId,
        "id",
    );
    rejects(&with(|v| v["id"] = json!("")), ValidationCode::InvalidId, "id");
    rejects(
        &with(|v| v["id"] = json!("a".repeat(129))),
        ValidationCode::InvalidId,
        "id",
    );
    parse_event(&with(|v| v["id"] = json!("a".repeat(128))), &Limits::default()).unwrap();
    rejects(
        &with(|v| v["data"]["shareId"] = json!("share/1")),
        ValidationCode::InvalidId,
        "data.shareId",
    );
    rejects(
        &with(|v| v["data"]["engagerInfo"]["userId"] = json!("ü")),
        ValidationCode::InvalidId,
        "data.engagerInfo.userId",
    );
    rejects(
        &event(
            "user.profile.updated",
            json!({"userId": "u", "connections": {"added": ["ok", "not ok"]}}),
        ),
        ValidationCode::InvalidId,
        "data.connections.added[1]",
    );
}

#[test]
fn invalid_timestamp() {
    for t in [
        "2025-03-15",
        "2025-03-15T14:30:45",
        "2025-13-01T00:00:00Z",
        "2025-03-15 14:30:45Z",
        "yesterday",
    ] {
        rejects(
            &with(|v| v["time"] = json!(t)),
            ValidationCode::InvalidTimestamp,
            "time",
        );
    }
    rejects(
        &with(|v| v["data"]["timestamp"] = json!("2025-03-15")),
        ValidationCode::InvalidTimestamp,
        "data.timestamp",
    );
    rejects(
        &event(
            "referral.conversion.completed",
            json!({
                "referralId": "r", "newUserId": "n", "referrerId": "u",
                "reward": {"type": "cash", "amount": 5, "status": "paid", "eligibleDate": "soon"}
            }),
        ),
        ValidationCode::InvalidTimestamp,
        "data.reward.eligibleDate",
    );
}

#[test]
fn offsets_and_precision_are_kept() {
    let raw = with(|v| {
        v["time"] = json!("2025-03-15T16:30:45.123456789+02:00");
        v["data"]["timestamp"] = json!("2025-03-15T14:30:45.5Z");
    });
    let e = parse_event(&raw, &Limits::default()).unwrap();
    let json: Value = serde_json::from_slice(&e.to_json()).unwrap();
    assert_eq!(json["time"], "2025-03-15T14:30:45.123456789Z");
    assert_eq!(json["data"]["timestamp"], "2025-03-15T14:30:45.500Z");
    assert_eq!(parse_event(&e.to_json(), &Limits::default()).unwrap(), e);
}

#[test]
fn unknown_event_type() {
    rejects(
        &with(|v| v["type"] = json!("social.share.deleted")),
        ValidationCode::UnknownEventType,
        "type",
    );
    assert_eq!(
        "nope".parse::<social_schemas::EventType>().unwrap_err().code,
        ValidationCode::UnknownEventType
    );
}

#[test]
fn string_too_long() {
    rejects(
        &with(|v| v["data"]["engagerInfo"]["displayName"] = json!("é".repeat(129))),
        ValidationCode::StringTooLong,
        "data.engagerInfo.displayName",
    );
    // 128 two-byte characters are fine: lengths count characters, not bytes.
    parse_event(
        &with(|v| v["data"]["engagerInfo"]["displayName"] = json!("é".repeat(128))),
        &Limits::default(),
    )
    .unwrap();
    rejects(
        &with(|v| v["subject"] = json!("s".repeat(257))),
        ValidationCode::StringTooLong,
        "subject",
    );
    rejects(
        &with(|v| v["source"] = json!("s".repeat(257))),
        ValidationCode::StringTooLong,
        "source",
    );
    rejects(
        &with(|v| v["comexampleext"] = json!("s".repeat(2001))),
        ValidationCode::StringTooLong,
        "comexampleext",
    );
    rejects(
        &event(
            "project.created",
            json!({"projectId": "p", "ownerId": "o", "title": "t".repeat(201)}),
        ),
        ValidationCode::StringTooLong,
        "data.title",
    );
    rejects(
        &event(
            "social.share.created",
            json!({
                "shareId": "s", "userId": "u", "contentType": "portfolio", "contentId": "c", "platform": "sms",
                "metadata": {"note": {"deep": ["x".repeat(2001)]}}
            }),
        ),
        ValidationCode::StringTooLong,
        "data.metadata.note.deep[0]",
    );
    let small = Limits {
        max_text_len: 10,
        ..Limits::default()
    };
    let e = parse_event(&with(|v| v["ext"] = json!("x".repeat(11))), &small).unwrap_err();
    assert_eq!(e.code, ValidationCode::StringTooLong);
    // A key inside an open object is a string too: 11 characters is over a limit of 10.
    let share = |key: &str| {
        event(
            "social.share.created",
            json!({
                "shareId": "s", "userId": "u", "contentType": "portfolio", "contentId": "c", "platform": "sms",
                "metadata": {"note": {key: 1}}
            }),
        )
    };
    parse_event(&share(&"k".repeat(10)), &small).unwrap();
    // A key twice in one object is malformed JSON, however deep the object.
    let raw = String::from_utf8(share("a"))
        .unwrap()
        .replace(r#"{"a":1}"#, r#"{"a":1,"b":{"c":1,"c":2}}"#);
    rejects(
        raw.as_bytes(),
        ValidationCode::MalformedJson,
        "data.metadata.note.b.c",
    );
    let e = parse_event(&share(&"k".repeat(11)), &small).unwrap_err();
    assert_eq!(e.code, ValidationCode::StringTooLong, "{e}");
    assert!(e.message.starts_with("data.metadata.note.kkkkkkkkkkk:"), "{e}");
}

#[test]
fn every_code_has_a_case() {
    // Guard: a new code needs a test above.
    assert_eq!(ValidationCode::ALL.len(), 13);
    let names: Vec<&str> = ValidationCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        names,
        [
            "malformed_json",
            "not_an_object",
            "unsupported_specversion",
            "missing_field",
            "invalid_field_type",
            "invalid_field_value",
            "unknown_field",
            "invalid_id",
            "invalid_timestamp",
            "unknown_event_type",
            "string_too_long",
            "event_too_large",
            "timestamp_in_future"
        ]
    );
}

#[test]
fn extensions_are_kept() {
    let raw = with(|v| {
        v["traceparent"] = json!("00-abc-01");
        v["partitionkey"] = json!(7);
        v["sampled"] = json!(true);
        v["subject"] = json!(null);
        v["datacontenttype"] = json!("application/json; charset=utf-8");
    });
    let e = parse_event(&raw, &Limits::default()).unwrap();
    assert_eq!(e.extensions.len(), 3);
    assert_eq!(e.subject, None);
    assert_eq!(parse_event(&e.to_json(), &Limits::default()).unwrap(), e);
}

#[test]
fn a_null_extension_counts_as_absent() {
    let e = parse_event(&with(|v| v["traceparent"] = json!(null)), &Limits::default()).unwrap();
    assert!(e.extensions.is_empty(), "{:?}", e.extensions);
    assert_eq!(parse_event(&e.to_json(), &Limits::default()).unwrap(), e);
    // Still one attribute: a repeat is refused, null or not.
    let raw = String::from_utf8(with(|_| {})).unwrap();
    let twice = raw.replacen('{', r#"{"ext":null,"ext":1,"#, 1);
    rejects(twice.as_bytes(), ValidationCode::MalformedJson, "ext");
}

#[test]
fn media_types_compare_without_case() {
    for media_type in [
        "Application/JSON",
        "application/json ; charset=utf-8",
        "APPLICATION/JSON;charset=UTF-8",
    ] {
        parse_event(
            &with(|v| v["datacontenttype"] = json!(media_type)),
            &Limits::default(),
        )
        .unwrap();
    }
    for media_type in ["application/jsonx", "application/json-seq", "text/json"] {
        rejects(
            &with(|v| v["datacontenttype"] = json!(media_type)),
            ValidationCode::InvalidFieldValue,
            "datacontenttype",
        );
    }
}

#[test]
fn error_display_names_code_and_path() {
    let e = rejects(
        &with(|v| v["data"]["shareId"] = json!(7)),
        ValidationCode::InvalidFieldType,
        "data.shareId",
    );
    assert!(
        e.to_string().starts_with("invalid_field_type: data.shareId:"),
        "{e}"
    );
}

#[test]
fn deep_nesting_is_rejected_without_overflow() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for n in [10, 127, 200, 30_000] {
        let raw = format!(
            r#"{{"specversion":"1.0","id":"e","source":"/s","type":"social.share.created","time":"2025-01-01T00:00:00Z","ext":{d},"data":{{"shareId":"s","userId":"u","contentType":"project","contentId":"c","platform":"sms","metadata":{{"x":{d}}}}}}}"#,
            d = deep(n)
        );
        let _ = parse_event(raw.as_bytes(), &Limits::default());
        let raw = format!(
            r#"{{"specversion":"1.0","id":"e","source":"/s","type":"social.share.created","time":"2025-01-01T00:00:00Z","data":{{"shareId":"s","userId":"u","contentType":"project","contentId":"c","platform":"sms","metadata":{{"x":{d}}}}}}}"#,
            d = deep(n)
        );
        let r = parse_event(
            raw.as_bytes(),
            &Limits {
                max_event_bytes: 1 << 20,
                ..Limits::default()
            },
        );
        if n >= 200 {
            assert_eq!(r.unwrap_err().code, ValidationCode::MalformedJson);
        }
    }
}

#[test]
fn enum_wire_strings_match_serde() {
    use social_schemas::*;
    fn check<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Copy>(
        all: &[T],
        as_str: fn(&T) -> &'static str,
    ) {
        for v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), json!(as_str(v)));
            assert_eq!(serde_json::from_value::<T>(json!(as_str(v))).unwrap(), *v);
        }
    }
    check(&ContentType::ALL, ContentType::as_str);
    check(&Platform::ALL, Platform::as_str);
    check(&ShareFormat::ALL, ShareFormat::as_str);
    check(&ShareVisibility::ALL, ShareVisibility::as_str);
    check(&EngagementType::ALL, EngagementType::as_str);
    check(&ConversionStage::ALL, ConversionStage::as_str);
    check(&ConversionType::ALL, ConversionType::as_str);
    check(&RewardType::ALL, RewardType::as_str);
    check(&RewardStatus::ALL, RewardStatus::as_str);
    check(&UserRole::ALL, UserRole::as_str);
    check(&ProjectVisibility::ALL, ProjectVisibility::as_str);
    check(&MessageContext::ALL, MessageContext::as_str);
    check(&TestimonialEngagementType::ALL, TestimonialEngagementType::as_str);
    check(&EventType::ALL, EventType::as_str);
    assert_eq!(Platform::CopyLink.to_string(), "copy_link");
    assert_eq!(ContentType::ReferralLink.as_str(), "referral_link");
}

#[test]
fn timestamp_in_future() {
    use social_schemas::check_not_ahead;
    assert!(check_not_ahead(1_000_000, 1_000_000, 0).is_ok());
    assert!(check_not_ahead(1_900_000, 1_000_000, 900_000).is_ok());
    let e = check_not_ahead(1_900_001, 1_000_000, 900_000).unwrap_err();
    assert_eq!(e.code, ValidationCode::TimestampInFuture);
    assert!(e.message.contains("900 s after"), "{}", e.message);
    // Far in the past, or at the limits of the type: never an overflow.
    assert!(check_not_ahead(i64::MIN, i64::MAX, 0).is_ok());
    assert!(check_not_ahead(i64::MAX, i64::MIN, 0).is_err());
}
