//! Event payloads and their CloudEvents JSON encoding.
//!
//! Payloads are plain structs with a fixed field order, so the JSON is byte-stable; optional fields are left out
//! when absent. Field names and enumerated values follow `docs/EVENTS.md`.

use std::net::IpAddr;

use serde::{Serialize, Serializer};

use super::ids::{CodeId, ContentRef, EventId, Id, LandingPage, Name, ProgramId, Ts, TsText};

fn as_string<T: std::fmt::Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShareCreated {
    pub(crate) share_id: Id,
    pub(crate) user_id: Id,
    pub(crate) content_type: &'static str,
    pub(crate) content_id: ContentRef,
    pub(crate) platform: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) share_format: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<ShareMetadata>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShareMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) visibility: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ShareEngaged {
    pub(crate) share_id: Id,
    pub(crate) engagement_type: &'static str,
    pub(crate) engager_info: EngagerInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content_id: Option<ContentRef>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EngagerInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<Name>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CodeGenerated {
    pub(crate) code_id: CodeId,
    pub(crate) user_id: Id,
    pub(crate) program_id: ProgramId,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LinkClicked {
    pub(crate) referral_id: CodeId,
    #[serde(serialize_with = "as_string")]
    pub(crate) source_ip: IpAddr,
    pub(crate) user_agent: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) landing_page: Option<LandingPage>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversionStarted {
    pub(crate) referral_id: CodeId,
    pub(crate) prospect_id: Id,
    pub(crate) stage: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversionCompleted {
    pub(crate) referral_id: CodeId,
    pub(crate) new_user_id: Id,
    pub(crate) referrer_id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) program_id: Option<ProgramId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) conversion_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reward: Option<PendingReward>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PendingReward {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) amount: f64,
    pub(crate) status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) eligible_date: Option<Ts>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RewardEarned {
    pub(crate) user_id: Id,
    pub(crate) reward_id: Id,
    pub(crate) amount: f64,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) program_id: Option<ProgramId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) referral_id: Option<CodeId>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeaderboardUpdated {
    pub(crate) board_id: &'static str,
    pub(crate) changes: Vec<RankChange>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RankChange {
    pub(crate) user_id: Id,
    pub(crate) position: u32,
    pub(crate) delta: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserRegistered {
    pub(crate) user_id: Id,
    pub(crate) role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) referral_code: Option<CodeId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<Name>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProfileUpdated {
    pub(crate) user_id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<Name>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) privacy: Option<Privacy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connections: Option<Connections>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Privacy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) activity_broadcast: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) incognito: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) anonymous_referrals: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) private_rewards: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Connections {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) added: Vec<Id>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) removed: Vec<Id>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectCreated {
    pub(crate) project_id: Id,
    pub(crate) owner_id: Id,
    pub(crate) title: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) visibility: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectCompleted {
    pub(crate) project_id: Id,
    pub(crate) owner_id: Id,
    pub(crate) contractor_id: Id,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BidAwarded {
    pub(crate) bid_id: Id,
    pub(crate) project_id: Id,
    pub(crate) contractor_id: Id,
    pub(crate) homeowner_id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) amount: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageSent {
    pub(crate) message_id: Id,
    pub(crate) sender_id: Id,
    pub(crate) recipient_id: Id,
    pub(crate) context: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) share_id: Option<Id>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TestimonialPublished {
    pub(crate) testimonial_id: Id,
    pub(crate) author_id: Id,
    pub(crate) subject_user_id: Id,
    pub(crate) rating: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) project_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) excerpt: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TestimonialEngaged {
    pub(crate) testimonial_id: Id,
    pub(crate) engagement_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) engager_id: Option<Id>,
}

/// One input event's payload.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Payload {
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
    MessageSent(MessageSent),
    TestimonialPublished(TestimonialPublished),
    TestimonialEngaged(TestimonialEngaged),
}

/// Every event type, in catalogue order.
pub const EVENT_TYPES: [&str; 16] = [
    "social.share.created",
    "social.share.engaged",
    "referral.code.generated",
    "referral.link.clicked",
    "referral.conversion.started",
    "referral.conversion.completed",
    "referral.reward.earned",
    "referral.leaderboard.updated",
    "user.registered",
    "user.profile.updated",
    "project.created",
    "project.completed",
    "bid.awarded",
    "message.sent.social",
    "testimonial.published",
    "testimonial.engaged",
];

impl Payload {
    /// CloudEvents `type`.
    pub(crate) fn event_type(&self) -> &'static str {
        let index = match self {
            Payload::ShareCreated(_) => 0,
            Payload::ShareEngaged(_) => 1,
            Payload::CodeGenerated(_) => 2,
            Payload::LinkClicked(_) => 3,
            Payload::ConversionStarted(_) => 4,
            Payload::ConversionCompleted(_) => 5,
            Payload::RewardEarned(_) => 6,
            Payload::LeaderboardUpdated(_) => 7,
            Payload::UserRegistered(_) => 8,
            Payload::ProfileUpdated(_) => 9,
            Payload::ProjectCreated(_) => 10,
            Payload::ProjectCompleted(_) => 11,
            Payload::BidAwarded(_) => 12,
            Payload::MessageSent(_) => 13,
            Payload::TestimonialPublished(_) => 14,
            Payload::TestimonialEngaged(_) => 15,
        };
        EVENT_TYPES[index]
    }

    /// Partition key of the catalogue (the `partition key` column of `docs/EVENTS.md`).
    pub(crate) fn partition_key(&self) -> String {
        match self {
            Payload::ShareCreated(p) => p.user_id.to_string(),
            Payload::ShareEngaged(p) => p.share_id.to_string(),
            Payload::CodeGenerated(p) => p.user_id.to_string(),
            Payload::LinkClicked(p) => p.referral_id.to_string(),
            Payload::ConversionStarted(p) => p.referral_id.to_string(),
            Payload::ConversionCompleted(p) => p.referrer_id.to_string(),
            Payload::RewardEarned(p) => p.user_id.to_string(),
            Payload::LeaderboardUpdated(p) => p.board_id.to_owned(),
            Payload::UserRegistered(p) => p.user_id.to_string(),
            Payload::ProfileUpdated(p) => p.user_id.to_string(),
            Payload::ProjectCreated(p) => p.owner_id.to_string(),
            Payload::ProjectCompleted(p) => p.owner_id.to_string(),
            Payload::BidAwarded(p) => p.contractor_id.to_string(),
            Payload::MessageSent(p) => p.sender_id.to_string(),
            Payload::TestimonialPublished(p) => p.author_id.to_string(),
            Payload::TestimonialEngaged(p) => p.testimonial_id.to_string(),
        }
    }
}

/// The payload with the optional `timestamp` every payload may carry (equal to the envelope `time`).
#[derive(Serialize)]
struct Data<'a> {
    #[serde(flatten)]
    payload: &'a Payload,
    timestamp: TsText,
}

#[derive(Serialize)]
struct Envelope<'a> {
    specversion: &'static str,
    id: EventId,
    source: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    time: TsText,
    datacontenttype: &'static str,
    data: Data<'a>,
}

/// Appends one compact CloudEvent (no trailing newline) to `out`.
pub(crate) fn write_event(
    out: &mut Vec<u8>,
    id: EventId,
    source: &str,
    time_ms: i64,
    payload: &Payload,
) -> serde_json::Result<()> {
    let time = Ts(time_ms).text();
    let envelope = Envelope {
        specversion: "1.0",
        id,
        source,
        kind: payload.event_type(),
        time,
        datacontenttype: "application/json",
        data: Data {
            payload,
            timestamp: time,
        },
    };
    serde_json::to_writer(out, &envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_layout() {
        let payload = Payload::CodeGenerated(CodeGenerated {
            code_id: CodeId(0),
            user_id: Id::user(3),
            program_id: ProgramId(0),
        });
        let mut out = Vec::new();
        write_event(
            &mut out,
            EventId { seed: 1, n: 2 },
            "/src",
            1_767_225_600_000,
            &payload,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"specversion":"1.0","id":"evt-1-2","source":"/src","type":"referral.code.generated","time":"2026-01-01T00:00:00.000Z","datacontenttype":"application/json","data":{"codeId":"code-00000000","userId":"user-3","programId":"program-standard","timestamp":"2026-01-01T00:00:00.000Z"}}"#
        );
        assert_eq!(payload.partition_key(), "user-3");
    }
}
