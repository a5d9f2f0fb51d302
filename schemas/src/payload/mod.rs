//! Typed payloads (`data`) of the sixteen input event types.

/// `ALL`, `as_str()` (the wire string) and `Display` for a payload enum.
macro_rules! wire_strings {
    (@one $v:ident) => {
        1
    };
    ($ty:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: [$ty; 0 $(+ wire_strings!(@one $variant))*] = [$($ty::$variant),*];

            /// The wire string of this value.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($ty::$variant => $s,)*
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod message;
mod project;
mod referral;
mod social;
mod testimonial;
mod user;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use message::*;
pub use project::*;
pub use referral::*;
pub use social::*;
pub use testimonial::*;
pub use user::*;

use crate::error::ValidationError;
use crate::event_type::EventType;
use crate::limits::Limits;
use crate::validate::{Validate, classify_serde_error};

/// The typed `data` of an event; the variant determines the event type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Payload {
    ShareCreated(ShareCreated),
    ShareEngaged(ShareEngaged),
    CodeGenerated(CodeGenerated),
    LinkClicked(LinkClicked),
    ConversionStarted(ConversionStarted),
    ConversionCompleted(ConversionCompleted),
    RewardEarned(RewardEarned),
    LeaderboardUpdated(LeaderboardUpdated),
    UserRegistered(UserRegistered),
    ProfileUpdated(ProfileUpdated),
    ProjectCreated(ProjectCreated),
    ProjectCompleted(ProjectCompleted),
    BidAwarded(BidAwarded),
    MessageSentSocial(MessageSentSocial),
    TestimonialPublished(TestimonialPublished),
    TestimonialEngaged(TestimonialEngaged),
}

/// Applies `$body` to the inner struct of every variant, bound as `$p`.
macro_rules! each_variant {
    ($self:expr, $p:ident => $body:expr) => {
        match $self {
            Payload::ShareCreated($p) => $body,
            Payload::ShareEngaged($p) => $body,
            Payload::CodeGenerated($p) => $body,
            Payload::LinkClicked($p) => $body,
            Payload::ConversionStarted($p) => $body,
            Payload::ConversionCompleted($p) => $body,
            Payload::RewardEarned($p) => $body,
            Payload::LeaderboardUpdated($p) => $body,
            Payload::UserRegistered($p) => $body,
            Payload::ProfileUpdated($p) => $body,
            Payload::ProjectCreated($p) => $body,
            Payload::ProjectCompleted($p) => $body,
            Payload::BidAwarded($p) => $body,
            Payload::MessageSentSocial($p) => $body,
            Payload::TestimonialPublished($p) => $body,
            Payload::TestimonialEngaged($p) => $body,
        }
    };
}

macro_rules! from_impls {
    ($($v:ident),* $(,)?) => {
        $(impl From<$v> for Payload {
            fn from(p: $v) -> Self {
                Payload::$v(p)
            }
        })*
    };
}

from_impls!(
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
);

impl Payload {
    /// The event type this payload belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::ShareCreated(_) => EventType::ShareCreated,
            Payload::ShareEngaged(_) => EventType::ShareEngaged,
            Payload::CodeGenerated(_) => EventType::CodeGenerated,
            Payload::LinkClicked(_) => EventType::LinkClicked,
            Payload::ConversionStarted(_) => EventType::ConversionStarted,
            Payload::ConversionCompleted(_) => EventType::ConversionCompleted,
            Payload::RewardEarned(_) => EventType::RewardEarned,
            Payload::LeaderboardUpdated(_) => EventType::LeaderboardUpdated,
            Payload::UserRegistered(_) => EventType::UserRegistered,
            Payload::ProfileUpdated(_) => EventType::ProfileUpdated,
            Payload::ProjectCreated(_) => EventType::ProjectCreated,
            Payload::ProjectCompleted(_) => EventType::ProjectCompleted,
            Payload::BidAwarded(_) => EventType::BidAwarded,
            Payload::MessageSentSocial(_) => EventType::MessageSentSocial,
            Payload::TestimonialPublished(_) => EventType::TestimonialPublished,
            Payload::TestimonialEngaged(_) => EventType::TestimonialEngaged,
        }
    }

    /// The partition key of `docs/EVENTS.md` (the user, share, referral, board, ... the event is about).
    pub fn partition_key(&self) -> &str {
        match self {
            Payload::ShareCreated(p) => &p.user_id,
            Payload::ShareEngaged(p) => &p.share_id,
            Payload::CodeGenerated(p) => &p.user_id,
            Payload::LinkClicked(p) => &p.referral_id,
            Payload::ConversionStarted(p) => &p.referral_id,
            Payload::ConversionCompleted(p) => &p.referrer_id,
            Payload::RewardEarned(p) => &p.user_id,
            Payload::LeaderboardUpdated(p) => &p.board_id,
            Payload::UserRegistered(p) => &p.user_id,
            Payload::ProfileUpdated(p) => &p.user_id,
            Payload::ProjectCreated(p) => &p.owner_id,
            Payload::ProjectCompleted(p) => &p.owner_id,
            Payload::BidAwarded(p) => &p.contractor_id,
            Payload::MessageSentSocial(p) => &p.sender_id,
            Payload::TestimonialPublished(p) => &p.author_id,
            Payload::TestimonialEngaged(p) => &p.testimonial_id,
        }
    }

    /// The optional payload `timestamp`.
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        each_variant!(self, p => p.timestamp)
    }

    /// The semantic checks of `parse_event` (identifiers, lengths, ranges, IPs) on an already typed payload.
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        each_variant!(self, p => p.validate(limits))
    }

    /// Deserializes and checks the `data` JSON text of an event of type `ty`.
    pub(crate) fn parse(ty: EventType, data: &str, limits: &Limits) -> Result<Payload, ValidationError> {
        Ok(match ty {
            EventType::ShareCreated => Payload::ShareCreated(typed(data, limits)?),
            EventType::ShareEngaged => Payload::ShareEngaged(typed(data, limits)?),
            EventType::CodeGenerated => Payload::CodeGenerated(typed(data, limits)?),
            EventType::LinkClicked => Payload::LinkClicked(typed(data, limits)?),
            EventType::ConversionStarted => Payload::ConversionStarted(typed(data, limits)?),
            EventType::ConversionCompleted => Payload::ConversionCompleted(typed(data, limits)?),
            EventType::RewardEarned => Payload::RewardEarned(typed(data, limits)?),
            EventType::LeaderboardUpdated => Payload::LeaderboardUpdated(typed(data, limits)?),
            EventType::UserRegistered => Payload::UserRegistered(typed(data, limits)?),
            EventType::ProfileUpdated => Payload::ProfileUpdated(typed(data, limits)?),
            EventType::ProjectCreated => Payload::ProjectCreated(typed(data, limits)?),
            EventType::ProjectCompleted => Payload::ProjectCompleted(typed(data, limits)?),
            EventType::BidAwarded => Payload::BidAwarded(typed(data, limits)?),
            EventType::MessageSentSocial => Payload::MessageSentSocial(typed(data, limits)?),
            EventType::TestimonialPublished => Payload::TestimonialPublished(typed(data, limits)?),
            EventType::TestimonialEngaged => Payload::TestimonialEngaged(typed(data, limits)?),
        })
    }
}

/// Fast path without path tracking; on failure, deserializes again with `serde_path_to_error` to name the field.
fn typed<T: DeserializeOwned + Validate>(data: &str, limits: &Limits) -> Result<T, ValidationError> {
    match serde_json::from_str::<T>(data) {
        Ok(p) => {
            p.validate(limits)?;
            Ok(p)
        }
        Err(_) => {
            let mut de = serde_json::Deserializer::from_str(data);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(e) => Err(classify_serde_error("data", e)),
                // Cannot happen (same input, same type); report it rather than panic.
                Ok(_) => Err(ValidationError::new(
                    crate::error::ValidationCode::MalformedJson,
                    "data: could not be deserialized",
                )),
            }
        }
    }
}
