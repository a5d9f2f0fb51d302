//! Event -> `raw_events` row: the envelope, the partition key and a few payload fields as columns.

use chrono::{DateTime, Utc};
use social_schemas::{Event, Payload};

use crate::rows::RawEventRow;

/// The columns taken from the payload; empty / zero when the event type has no such field.
#[derive(Default)]
struct Extracted<'a> {
    user_id: &'a str,
    program_id: &'a str,
    referral_id: &'a str,
    referrer_id: &'a str,
    content_id: &'a str,
    content_type: &'static str,
    platform: &'static str,
    engagement_type: &'static str,
    amount: f64,
}

fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

fn extract(payload: &Payload) -> Extracted<'_> {
    match payload {
        Payload::ShareCreated(p) => Extracted {
            user_id: &p.user_id,
            content_id: &p.content_id,
            content_type: p.content_type.as_str(),
            platform: p.platform.as_str(),
            ..Extracted::default()
        },
        Payload::ShareEngaged(p) => Extracted {
            user_id: opt(&p.engager_info.user_id),
            content_id: opt(&p.content_id),
            platform: p.engager_info.platform.map_or("", |x| x.as_str()),
            engagement_type: p.engagement_type.as_str(),
            ..Extracted::default()
        },
        Payload::CodeGenerated(p) => Extracted {
            user_id: &p.user_id,
            program_id: &p.program_id,
            referral_id: &p.code_id,
            ..Extracted::default()
        },
        Payload::LinkClicked(p) => Extracted {
            referral_id: &p.referral_id,
            ..Extracted::default()
        },
        Payload::ConversionStarted(p) => Extracted {
            user_id: &p.prospect_id,
            referral_id: &p.referral_id,
            ..Extracted::default()
        },
        Payload::ConversionCompleted(p) => Extracted {
            user_id: &p.new_user_id,
            program_id: opt(&p.program_id),
            referral_id: &p.referral_id,
            referrer_id: &p.referrer_id,
            amount: p.reward.as_ref().map_or(0.0, |r| r.amount),
            ..Extracted::default()
        },
        Payload::RewardEarned(p) => Extracted {
            user_id: &p.user_id,
            program_id: opt(&p.program_id),
            referral_id: opt(&p.referral_id),
            amount: p.amount,
            ..Extracted::default()
        },
        Payload::LeaderboardUpdated(_) => Extracted::default(),
        Payload::UserRegistered(p) => Extracted {
            user_id: &p.user_id,
            referral_id: opt(&p.referral_code),
            ..Extracted::default()
        },
        Payload::ProfileUpdated(p) => Extracted {
            user_id: &p.user_id,
            ..Extracted::default()
        },
        Payload::ProjectCreated(p) => Extracted {
            user_id: &p.owner_id,
            content_id: &p.project_id,
            content_type: "project",
            ..Extracted::default()
        },
        Payload::ProjectCompleted(p) => Extracted {
            user_id: &p.owner_id,
            content_id: &p.project_id,
            content_type: "project",
            ..Extracted::default()
        },
        Payload::BidAwarded(p) => Extracted {
            user_id: &p.contractor_id,
            content_id: &p.project_id,
            content_type: "project",
            amount: p.amount.unwrap_or(0.0),
            ..Extracted::default()
        },
        Payload::MessageSentSocial(p) => Extracted {
            user_id: &p.sender_id,
            ..Extracted::default()
        },
        Payload::TestimonialPublished(p) => Extracted {
            user_id: &p.author_id,
            content_id: &p.testimonial_id,
            content_type: "testimonial",
            ..Extracted::default()
        },
        Payload::TestimonialEngaged(p) => Extracted {
            user_id: opt(&p.engager_id),
            content_id: &p.testimonial_id,
            content_type: "testimonial",
            engagement_type: p.engagement_type.as_str(),
            ..Extracted::default()
        },
    }
}

/// The `raw_events` row of an event accepted at `ingest_time`.
pub fn raw_event_row(event: &Event, ingest_time: DateTime<Utc>) -> RawEventRow {
    let x = extract(&event.payload);
    RawEventRow {
        source: event.source.clone(),
        id: event.id.clone(),
        event_type: event.event_type().as_str().to_owned(),
        event_time: clamp_datetime(event.time),
        event_time_ms: event.time.timestamp_millis(),
        ingest_time: clamp_datetime(ingest_time),
        partition_key: event.partition_key().to_owned(),
        user_id: x.user_id.to_owned(),
        program_id: x.program_id.to_owned(),
        referral_id: x.referral_id.to_owned(),
        referrer_id: x.referrer_id.to_owned(),
        content_id: x.content_id.to_owned(),
        content_type: x.content_type.to_owned(),
        platform: x.platform.to_owned(),
        engagement_type: x.engagement_type.to_owned(),
        amount: x.amount,
        payload: String::from_utf8_lossy(&event.to_json()).into_owned(),
    }
}

/// ClickHouse `DateTime` holds seconds 0..=u32::MAX; events outside are pinned to the bounds (the exact time stays
/// in `event_time_ms` and the payload).
pub(crate) fn clamp_datetime(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp().clamp(0, i64::from(u32::MAX));
    DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Start of the minute of `t` (Unix seconds).
pub(crate) fn minute_of(t: DateTime<Utc>) -> i64 {
    let secs = clamp_datetime(t).timestamp();
    secs - secs.rem_euclid(60)
}
