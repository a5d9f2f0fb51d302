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
//! from the referrer; an incognito user's connection changes are not announced to the other side.

use serde_json::json;
use social_schemas::{
    BidAwarded, ConversionCompleted, ConversionStarted, Event, Payload, ProfileUpdated, ProjectVisibility,
    RewardStatus, UserRegistered,
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

fn send(
    out: &mut Emitter,
    kind: &str,
    event: &Event,
    topic: String,
    recipient: &str,
    data: serde_json::Value,
) {
    let event_type = format!("notification.{kind}");
    let id = id(kind, event, recipient);
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
            let data = json!({
                "shareId": p.share_id, "contentType": p.content_type, "contentId": p.content_id,
                "platform": p.platform, "shareFormat": p.share_format, "status": "confirmed",
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
            let data = json!({
                "rewardId": p.reward_id, "amount": p.amount, "type": p.kind,
                "programId": p.program_id, "referralId": p.referral_id,
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
            let data = json!({
                "projectId": p.project_id, "title": p.title, "category": p.category,
                "suggestion": "share_project", "contentType": "project",
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
            let data = json!({ "projectId": p.project_id, "contractorId": p.contractor_id });
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
    let data = json!({ "referralId": p.referral_id, "stage": p.stage });
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
    let data = json!({
        "referralId": p.referral_id,
        "stage": "completed",
        "newUserId": (!anonymous).then_some(&p.new_user_id),
        "programId": p.program_id,
        "conversionType": p.conversion_type,
        "rewardPending": p.reward.as_ref().is_some_and(|r| r.status == RewardStatus::Pending),
        "reward": p.reward,
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
    let data = json!({
        "userId": (!anonymous).then_some(&p.user_id),
        "displayName": if anonymous { None } else { p.display_name.as_ref() },
        "role": p.role,
        "referralCode": p.referral_code,
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
    let data = json!({ "added": added, "removed": removed });
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
    for (list, change) in [(added, "added"), (removed, "removed")] {
        for other in list {
            let data = json!({ "userId": p.user_id, "change": change });
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
        let Some(referrer) = dir.referred_by.get(party) else {
            continue;
        };
        let anonymous = dir.is_anonymous_referral(party);
        let data = json!({
            "bidId": p.bid_id, "projectId": p.project_id, "partnerId": (!anonymous).then_some(party),
            "partnerRole": role,
        });
        send(
            out,
            "collaboration.opportunity",
            event,
            topics::user_network(referrer),
            referrer,
            data,
        );
    }
}
