//! The sixteen input event types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ValidationCode, ValidationError};

/// The `type` attribute of an input event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ShareCreated,
    ShareEngaged,
    CodeGenerated,
    LinkClicked,
    ConversionStarted,
    ConversionCompleted,
    RewardEarned,
    LeaderboardUpdated,
    UserRegistered,
    ProfileUpdated,
    ProjectCreated,
    ProjectCompleted,
    BidAwarded,
    MessageSentSocial,
    TestimonialPublished,
    TestimonialEngaged,
}

impl EventType {
    /// Every type, in the order of `docs/EVENTS.md`.
    pub const ALL: [EventType; 16] = [
        EventType::ShareCreated,
        EventType::ShareEngaged,
        EventType::CodeGenerated,
        EventType::LinkClicked,
        EventType::ConversionStarted,
        EventType::ConversionCompleted,
        EventType::RewardEarned,
        EventType::LeaderboardUpdated,
        EventType::UserRegistered,
        EventType::ProfileUpdated,
        EventType::ProjectCreated,
        EventType::ProjectCompleted,
        EventType::BidAwarded,
        EventType::MessageSentSocial,
        EventType::TestimonialPublished,
        EventType::TestimonialEngaged,
    ];

    /// The CloudEvents `type` string, e.g. `social.share.created`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            EventType::ShareCreated => "social.share.created",
            EventType::ShareEngaged => "social.share.engaged",
            EventType::CodeGenerated => "referral.code.generated",
            EventType::LinkClicked => "referral.link.clicked",
            EventType::ConversionStarted => "referral.conversion.started",
            EventType::ConversionCompleted => "referral.conversion.completed",
            EventType::RewardEarned => "referral.reward.earned",
            EventType::LeaderboardUpdated => "referral.leaderboard.updated",
            EventType::UserRegistered => "user.registered",
            EventType::ProfileUpdated => "user.profile.updated",
            EventType::ProjectCreated => "project.created",
            EventType::ProjectCompleted => "project.completed",
            EventType::BidAwarded => "bid.awarded",
            EventType::MessageSentSocial => "message.sent.social",
            EventType::TestimonialPublished => "testimonial.published",
            EventType::TestimonialEngaged => "testimonial.engaged",
        }
    }

    /// Looks a type string up; `None` when it is not one of the sixteen types.
    pub fn from_type_str(s: &str) -> Option<EventType> {
        Some(match s {
            "social.share.created" => EventType::ShareCreated,
            "social.share.engaged" => EventType::ShareEngaged,
            "referral.code.generated" => EventType::CodeGenerated,
            "referral.link.clicked" => EventType::LinkClicked,
            "referral.conversion.started" => EventType::ConversionStarted,
            "referral.conversion.completed" => EventType::ConversionCompleted,
            "referral.reward.earned" => EventType::RewardEarned,
            "referral.leaderboard.updated" => EventType::LeaderboardUpdated,
            "user.registered" => EventType::UserRegistered,
            "user.profile.updated" => EventType::ProfileUpdated,
            "project.created" => EventType::ProjectCreated,
            "project.completed" => EventType::ProjectCompleted,
            "bid.awarded" => EventType::BidAwarded,
            "message.sent.social" => EventType::MessageSentSocial,
            "testimonial.published" => EventType::TestimonialPublished,
            "testimonial.engaged" => EventType::TestimonialEngaged,
            _ => return None,
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = ValidationError;

    /// Fails with code `unknown_event_type`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::from_type_str(s).ok_or_else(|| {
            ValidationError::new(
                ValidationCode::UnknownEventType,
                format!(
                    "type: unknown event type `{}`",
                    crate::validate::truncate_for_message(s)
                ),
            )
        })
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = EventType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event type string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<EventType, E> {
                EventType::from_type_str(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &"a known event type"))
            }
        }
        deserializer.deserialize_str(V)
    }
}
