//! Notifications for every use case of the spec, to the user topics and the output bus (for the Notification
//! Service). Event types:
//!
//! | type | topic | from |
//! |---|---|---|
//! | `notification.share.confirmed` | `user.{sharer}.social` | `social.share.created` (on arrival) |
//! | `notification.reward.earned` | `user.{id}.referrals` | `referral.reward.earned` (on arrival) |
//! | `notification.share.suggested` | `user.{owner}.social` | `project.created`, not private (on arrival) |
//! | `notification.testimonial.requested` | `user.{owner}.social` | `project.completed` (on arrival) |
//! | `notification.referral.status` | `user.{referrer}.referrals` | `referral.conversion.started` / `.completed` |
//! | `notification.friend.joined` | `user.{referrer}.network` | `user.registered` with a referral code |
//! | `notification.connection.changed` | `user.{id}.network` (both sides) | `user.profile.updated` connections |
//! | `notification.collaboration.opportunity` | `user.{referrer}.network` | `bid.awarded` with a referred party |
//!
//! "On arrival" notifications depend on their event alone, so they are sent as soon as the event is read, not
//! when the watermark passes it (share confirmations have a 500 ms latency target). The others need state
//! (attribution, privacy) and follow event-time order. Anonymous referral mode hides the new user's id and name
//! from the referrer (and, in a collaboration opportunity, the project, which is the homeowner's own); an
//! incognito user's connection changes are not announced to the other side.

use serde::Serialize;
use social_schemas::derived::MessageData;
use social_schemas::time::format_rfc3339;
use social_schemas::{
    BidAwarded, ContentType, ConversionCompleted, ConversionStage, ConversionStarted, ConversionType, Event,
    Payload, Platform, ProfileUpdated, ProjectVisibility, RewardStatus, RewardType, ShareFormat,
    UserRegistered, UserRole,
};

use super::directory::Directory;
use super::ids::MessageId;
use super::output::{Destination, Emitter, topics};

fn id(kind: &str, event: &Event, recipient: &str) -> String {
    MessageId::new("notify")
        .str(kind)
        .str(&event.source)
        .str(&event.id)
        .str(recipient)
        .finish()
}

fn send(out: &mut Emitter, kind: &str, event: &Event, topic: String, recipient: &str, data: MessageData) {
    send_as(out, kind, id(kind, event, recipient), event, topic, data);
}

fn send_as(out: &mut Emitter, kind: &str, id: String, event: &Event, topic: String, data: MessageData) {
    let event_type = format!("notification.{kind}");
    out.emit(
        Destination::SseAndBus,
        topic,
        id,
        &event_type,
        event.time.timestamp_millis(),
        data,
    );
}

/// Notifications that need nothing but the event; sent when it is read.
pub fn on_arrival(event: &Event, out: &mut Emitter) {
    match &event.payload {
        Payload::ShareCreated(p) => {
            let data = MessageData::new(&ShareConfirmed {
                content_id: &p.content_id,
                content_type: p.content_type,
                platform: p.platform,
                share_format: p.share_format,
                share_id: &p.share_id,
                status: "confirmed",
            });
            send(
                out,
                "share.confirmed",
                event,
                topics::user_social(&p.user_id),
                &p.user_id,
                data,
            );
        }
        Payload::RewardEarned(p) => {
            let data = MessageData::new(&RewardEarnedJson {
                amount: p.amount,
                program_id: p.program_id.as_deref(),
                referral_id: p.referral_id.as_deref(),
                reward_id: &p.reward_id,
                kind: p.kind,
            });
            send(
                out,
                "reward.earned",
                event,
                topics::user_referrals(&p.user_id),
                &p.user_id,
                data,
            );
        }
        Payload::ProjectCreated(p) if p.visibility != Some(ProjectVisibility::Private) => {
            let data = MessageData::new(&ShareSuggested {
                category: p.category.as_deref(),
                content_type: "project",
                project_id: &p.project_id,
                suggestion: "share_project",
                title: &p.title,
            });
            send(
                out,
                "share.suggested",
                event,
                topics::user_social(&p.owner_id),
                &p.owner_id,
                data,
            );
        }
        Payload::ProjectCompleted(p) => {
            let data = MessageData::new(&TestimonialRequested {
                contractor_id: &p.contractor_id,
                project_id: &p.project_id,
            });
            send(
                out,
                "testimonial.requested",
                event,
                topics::user_social(&p.owner_id),
                &p.owner_id,
                data,
            );
        }
        _ => {}
    }
}

pub fn conversion_started(event: &Event, p: &ConversionStarted, referrer: &str, out: &mut Emitter) {
    let data = MessageData::new(&StatusStarted {
        referral_id: &p.referral_id,
        stage: p.stage,
    });
    send(
        out,
        "referral.status",
        event,
        topics::user_referrals(referrer),
        referrer,
        data,
    );
}

pub fn conversion_completed(event: &Event, p: &ConversionCompleted, dir: &Directory, out: &mut Emitter) {
    let anonymous = dir.is_anonymous_referral(&p.new_user_id);
    let data = MessageData::new(&StatusCompleted {
        conversion_type: p.conversion_type,
        new_user_id: (!anonymous).then_some(p.new_user_id.as_str()),
        program_id: p.program_id.as_deref(),
        referral_id: &p.referral_id,
        reward: p.reward.as_ref().map(|r| RewardJson {
            amount: r.amount,
            eligible_date: r.eligible_date.as_ref().map(format_rfc3339),
            status: r.status,
            kind: r.kind,
        }),
        reward_pending: p
            .reward
            .as_ref()
            .is_some_and(|r| r.status == RewardStatus::Pending),
        stage: "completed",
    });
    send(
        out,
        "referral.status",
        event,
        topics::user_referrals(&p.referrer_id),
        &p.referrer_id,
        data,
    );
}

pub fn friend_joined(event: &Event, p: &UserRegistered, referrer: &str, dir: &Directory, out: &mut Emitter) {
    let anonymous = dir.is_anonymous_referral(&p.user_id);
    let data = MessageData::new(&FriendJoined {
        display_name: if anonymous {
            None
        } else {
            p.display_name.as_deref()
        },
        referral_code: p.referral_code.as_deref(),
        role: p.role,
        user_id: (!anonymous).then_some(p.user_id.as_str()),
    });
    send(
        out,
        "friend.joined",
        event,
        topics::user_network(referrer),
        referrer,
        data,
    );
}

pub fn connections(event: &Event, p: &ProfileUpdated, dir: &Directory, out: &mut Emitter) {
    let Some(changes) = &p.connections else { return };
    let added = changes.added.as_deref().unwrap_or_default();
    let removed = changes.removed.as_deref().unwrap_or_default();
    if added.is_empty() && removed.is_empty() {
        return;
    }
    let data = MessageData::new(&ConnectionsJson { added, removed });
    send(
        out,
        "connection.changed",
        event,
        topics::user_network(&p.user_id),
        &p.user_id,
        data,
    );
    if !dir.is_public(&p.user_id) {
        return;
    }
    // One notice per other user and event (ids are per event and recipient): the user themself and repeats are
    // skipped; a user both added and removed in one event is told the first.
    let mut told: rustc_hash::FxHashSet<&str> = rustc_hash::FxHashSet::default();
    for (list, change) in [(added, "added"), (removed, "removed")] {
        for other in list {
            if other == &p.user_id || !told.insert(other.as_str()) {
                continue;
            }
            let data = MessageData::new(&ConnectionJson {
                change,
                user_id: &p.user_id,
            });
            send(
                out,
                "connection.changed",
                event,
                topics::user_network(other),
                other,
                data,
            );
        }
    }
}

pub fn collaboration(event: &Event, p: &BidAwarded, dir: &Directory, out: &mut Emitter) {
    for (party, role) in [(&p.contractor_id, "contractor"), (&p.homeowner_id, "homeowner")] {
        let Some(referrer) = dir.referred_by.get(party.as_bytes()).map(|r| r.as_str()) else {
            continue;
        };
        let anonymous = dir.is_anonymous_referral(party);
        let data = MessageData::new(&Collaboration {
            bid_id: &p.bid_id,
            partner_id: (!anonymous).then_some(party.as_str()),
            partner_role: role,
            project_id: (!anonymous).then_some(p.project_id.as_str()),
        });
        // One notice per party: both may have the same referrer, so the party's role is part of the id.
        let kind = "collaboration.opportunity";
        let id = MessageId::new("notify")
            .str(kind)
            .str(&event.source)
            .str(&event.id)
            .str(referrer)
            .str(role)
            .finish();
        send_as(out, kind, id, event, topics::user_network(referrer), data);
    }
}

// Message payloads, keys in sorted order (the order of the `serde_json::Value` objects they replace).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShareConfirmed<'a> {
    content_id: &'a str,
    content_type: ContentType,
    platform: Platform,
    share_format: Option<ShareFormat>,
    share_id: &'a str,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RewardEarnedJson<'a> {
    amount: f64,
    program_id: Option<&'a str>,
    referral_id: Option<&'a str>,
    reward_id: &'a str,
    #[serde(rename = "type")]
    kind: RewardType,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShareSuggested<'a> {
    category: Option<&'a str>,
    content_type: &'static str,
    project_id: &'a str,
    suggestion: &'static str,
    title: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TestimonialRequested<'a> {
    contractor_id: &'a str,
    project_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusStarted<'a> {
    referral_id: &'a str,
    stage: ConversionStage,
}

/// `social_schemas::Reward` with sorted keys.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RewardJson {
    amount: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    eligible_date: Option<String>,
    status: RewardStatus,
    #[serde(rename = "type")]
    kind: RewardType,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusCompleted<'a> {
    conversion_type: Option<ConversionType>,
    new_user_id: Option<&'a str>,
    program_id: Option<&'a str>,
    referral_id: &'a str,
    reward: Option<RewardJson>,
    reward_pending: bool,
    stage: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FriendJoined<'a> {
    display_name: Option<&'a str>,
    referral_code: Option<&'a str>,
    role: UserRole,
    user_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ConnectionsJson<'a> {
    added: &'a [String],
    removed: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionJson<'a> {
    change: &'static str,
    user_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Collaboration<'a> {
    bid_id: &'a str,
    partner_id: Option<&'a str>,
    partner_role: &'static str,
    project_id: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use social_schemas::{ConnectionChanges, Event};

    use super::*;

    fn update(added: &[&str], removed: &[&str]) -> (Event, ProfileUpdated) {
        let list = |ids: &[&str]| Some(ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>());
        let p = ProfileUpdated {
            user_id: "a".into(),
            display_name: None,
            privacy: None,
            connections: Some(ConnectionChanges {
                added: list(added),
                removed: list(removed),
            }),
            timestamp: None,
        };
        let time = chrono::DateTime::from_timestamp_millis(1_767_225_600_000).unwrap_or_default();
        (Event::new("e1", "/tests", time, p.clone()), p)
    }

    /// Each recipient gets one notice per event, whatever the lists repeat; ids stay unique.
    #[test]
    fn connection_changes_notify_each_other_user_once() {
        let (event, p) = update(&["b", "b", "a", "c"], &["b", "c", "d"]);
        let mut out = Emitter::default();
        connections(&event, &p, &Directory::default(), &mut out);
        let topics: Vec<&str> = out.outputs.iter().map(|o| o.message.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "user.a.network",
                "user.b.network",
                "user.c.network",
                "user.d.network"
            ]
        );
        let ids: std::collections::BTreeSet<&str> =
            out.outputs.iter().map(|o| o.message.id.as_str()).collect();
        assert_eq!(ids.len(), out.outputs.len());
        let told_b = out.outputs[1].message.data.to_value();
        assert_eq!(told_b["change"], "added");
        assert_eq!(out.outputs[3].message.data.to_value()["change"], "removed");
    }
}
