//! Reference state every operator reads: referral codes and who owns them (attribution), who referred whom,
//! who shared what, who wrote which testimonial, and each user's privacy settings.
//!
//! Too-late events still update this state (a late opt-out must never be ignored), but no aggregate.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use social_schemas::{ContentType, PrivacySettings, ShareMetadata, ShareVisibility};

use crate::window::key::Key;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeInfo {
    pub owner: Key,
    pub program: Key,
    /// Where the code's creation stands in event order: an event before it names no code, whenever it is read.
    /// Absent in checkpoints written before it was kept: known since always.
    #[serde(default = "since_always", skip_serializing_if = "is_since_always")]
    pub created: OrderStamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareInfo {
    pub sharer: Key,
    pub content_id: Key,
    pub content_type: ContentType,
    /// Shared with friends only or privately (`metadata.visibility`): neither the share nor engagements on it
    /// count on a public topic. Only written when set, which keeps checkpoints of public shares as they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restricted: bool,
    /// As [`CodeInfo::created`].
    #[serde(default = "since_always", skip_serializing_if = "is_since_always")]
    pub created: OrderStamp,
}

/// Where an event stands in event order: `(event time in ms, tie_hash(source, id))`, the order the engine
/// releases events in.
pub type OrderStamp = (i64, u64);

/// The stamp of reference state whose event is not known (checkpoints from before stamps were kept).
const ALWAYS: OrderStamp = (i64::MIN, 0);

fn since_always() -> OrderStamp {
    ALWAYS
}

fn is_since_always(stamp: &OrderStamp) -> bool {
    *stamp == ALWAYS
}

impl ShareInfo {
    /// Whether a share with this `metadata.visibility` has a restricted audience (no visibility: public).
    pub fn is_restricted(metadata: Option<&ShareMetadata>) -> bool {
        metadata
            .and_then(|m| m.visibility)
            .is_some_and(|v| v != ShareVisibility::Public)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Directory {
    /// Keys are looked up by bytes: `codes.get(code.as_bytes())`.
    pub codes: FxHashMap<Key, CodeInfo>,
    pub referred_by: FxHashMap<Key, Key>,
    pub shares: FxHashMap<Key, ShareInfo>,
    pub testimonial_authors: FxHashMap<Key, Key>,
    privacy: FxHashMap<Key, PrivacySettings>,
    /// Per user, the order stamp (event time, then a hash of `(source, id)`) of the update that set each privacy
    /// flag (`activityBroadcast`, `incognito`, `anonymousReferrals`, `privateRewards`): an older update arriving
    /// late never overrides a newer one, so the settings do not depend on arrival order. Absent in checkpoints
    /// written before stamps were kept: every flag then counts as never set.
    #[serde(default)]
    privacy_stamps: FxHashMap<Key, [PrivacyStamp; 4]>,
    /// Per referred user, the order stamp of the event that named the referrer in `referred_by`: the one latest
    /// in event order names them, whatever the arrival order. Absent in older checkpoints (see `ALWAYS`).
    #[serde(default)]
    referred_by_stamps: FxHashMap<Key, OrderStamp>,
}

/// Where a privacy update stands in event order.
pub type PrivacyStamp = OrderStamp;

/// The stamp of a flag no update has set.
const NEVER_SET: PrivacyStamp = ALWAYS;

impl Directory {
    /// The referrer who owns `code`, whenever the code was created.
    pub fn referrer_of_code(&self, code: &str) -> Option<&CodeInfo> {
        self.codes.get(code.as_bytes())
    }

    /// The referrer who owns `code` for an event at `at` in event order: `None` when the code was created after.
    pub fn referrer_of_code_at(&self, code: &str, at: OrderStamp) -> Option<&CodeInfo> {
        self.codes.get(code.as_bytes()).filter(|info| info.created < at)
    }

    /// The share `share` for an event at `at` in event order: `None` when it was created after.
    pub fn share_at(&self, share: &str, at: OrderStamp) -> Option<&ShareInfo> {
        self.shares.get(share.as_bytes()).filter(|info| info.created < at)
    }

    /// Records a code's creation. Its owner and program are those of the creation latest in event order; it
    /// counts as created at its earliest.
    pub fn insert_code(&mut self, code: &str, info: CodeInfo) {
        insert_created(&mut self.codes, code, info, |info| &mut info.created);
    }

    /// Records a share, as [`Directory::insert_code`] does a code.
    pub fn insert_share(&mut self, share: &str, info: ShareInfo) {
        insert_created(&mut self.shares, share, info, |info| &mut info.created);
    }

    /// Names `referrer` as who referred `user`, for an event at `at` in event order, unless an event later in
    /// event order named one already. Returns whether anything changed.
    pub fn set_referrer(&mut self, user: &str, referrer: &str, at: OrderStamp) -> bool {
        let since = self
            .referred_by_stamps
            .get(user.as_bytes())
            .copied()
            .unwrap_or(ALWAYS);
        let unchanged = since == at
            && self
                .referred_by
                .get(user.as_bytes())
                .is_some_and(|known| known.as_str() == referrer);
        if since > at || unchanged {
            return false;
        }
        self.referred_by.insert(Key::new(user), Key::new(referrer));
        self.referred_by_stamps.insert(Key::new(user), at);
        true
    }

    /// Merges a profile's privacy update stamped `stamp` (absent fields keep their value; a field a later update
    /// already set keeps that update's value). Returns whether the user's public visibility changed.
    pub fn update_privacy(&mut self, user: &str, update: &PrivacySettings, stamp: PrivacyStamp) -> bool {
        let before = self.is_public(user);
        let key = Key::new(user);
        let stamps = self.privacy_stamps.entry(key.clone()).or_insert([NEVER_SET; 4]);
        let slot = self.privacy.entry(key).or_default();
        let fields = [
            (update.activity_broadcast, &mut slot.activity_broadcast),
            (update.incognito, &mut slot.incognito),
            (update.anonymous_referrals, &mut slot.anonymous_referrals),
            (update.private_rewards, &mut slot.private_rewards),
        ];
        for ((value, field), set_at) in fields.into_iter().zip(stamps.iter_mut()) {
            if let Some(value) = value
                && stamp >= *set_at
            {
                *field = Some(value);
                *set_at = stamp;
            }
        }
        before != self.is_public(user)
    }

    /// Whether the user may appear on public topics: not opted out of activity broadcast, not incognito.
    pub fn is_public(&self, user: &str) -> bool {
        self.privacy
            .get(user.as_bytes())
            .is_none_or(|p| p.activity_broadcast != Some(false) && p.incognito != Some(true))
    }

    /// Whether the user's identity is hidden from whoever referred them.
    pub fn is_anonymous_referral(&self, user: &str) -> bool {
        self.privacy
            .get(user.as_bytes())
            .is_some_and(|p| p.anonymous_referrals == Some(true) || p.incognito == Some(true))
    }

    pub fn has_private_rewards(&self, user: &str) -> bool {
        self.privacy
            .get(user.as_bytes())
            .is_some_and(|p| p.private_rewards == Some(true))
    }

    /// Entries held, for the state-size metric.
    pub fn len(&self) -> usize {
        self.codes.len()
            + self.referred_by.len()
            + self.shares.len()
            + self.testimonial_authors.len()
            + self.privacy.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Users with privacy settings.
    pub fn privacy_len(&self) -> usize {
        self.privacy.len()
    }

    /// The parts the referral side keeps (codes, referrals, privacy) and those the social side keeps (shares,
    /// testimonial authors, privacy): the privacy settings go to both.
    pub(crate) fn split(self) -> (Directory, Directory) {
        let social = Directory {
            codes: FxHashMap::default(),
            referred_by: FxHashMap::default(),
            referred_by_stamps: FxHashMap::default(),
            shares: self.shares,
            testimonial_authors: self.testimonial_authors,
            privacy: self.privacy.clone(),
            privacy_stamps: self.privacy_stamps.clone(),
        };
        let referral = Directory {
            codes: self.codes,
            referred_by: self.referred_by,
            referred_by_stamps: self.referred_by_stamps,
            shares: FxHashMap::default(),
            testimonial_authors: FxHashMap::default(),
            privacy: self.privacy,
            privacy_stamps: self.privacy_stamps,
        };
        (referral, social)
    }

    /// Serializes as one directory: this (referral) side's codes, referrals and privacy with `social`'s shares and
    /// testimonial authors. The inverse of [`Directory::split`].
    pub(crate) fn union<'a>(&'a self, social: &'a Directory) -> DirectoryUnion<'a> {
        DirectoryUnion {
            codes: &self.codes,
            referred_by: &self.referred_by,
            shares: &social.shares,
            testimonial_authors: &social.testimonial_authors,
            privacy: &self.privacy,
            privacy_stamps: &self.privacy_stamps,
            referred_by_stamps: &self.referred_by_stamps,
        }
    }
}

/// Inserts `info` under `id`, keeping the values of the one latest in event order and the earliest creation.
fn insert_created<T>(
    map: &mut FxHashMap<Key, T>,
    id: &str,
    mut info: T,
    created: impl Fn(&mut T) -> &mut OrderStamp,
) {
    let Some(known) = map.get_mut(id.as_bytes()) else {
        map.insert(Key::new(id), info);
        return;
    };
    let earliest = (*created(known)).min(*created(&mut info));
    if *created(&mut info) >= *created(known) {
        *known = info;
    }
    *created(known) = earliest;
}

/// A [`Directory`] made of two sides' parts, serialized exactly as one directory (same fields, same order).
#[derive(Serialize)]
pub(crate) struct DirectoryUnion<'a> {
    codes: &'a FxHashMap<Key, CodeInfo>,
    referred_by: &'a FxHashMap<Key, Key>,
    shares: &'a FxHashMap<Key, ShareInfo>,
    testimonial_authors: &'a FxHashMap<Key, Key>,
    privacy: &'a FxHashMap<Key, PrivacySettings>,
    privacy_stamps: &'a FxHashMap<Key, [PrivacyStamp; 4]>,
    referred_by_stamps: &'a FxHashMap<Key, OrderStamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(owner: &str, created: OrderStamp) -> CodeInfo {
        CodeInfo {
            owner: Key::new(owner),
            program: Key::new("p"),
            created,
        }
    }

    #[test]
    fn the_referrer_latest_in_event_order_holds_whatever_the_arrival_order() {
        let mut dir = Directory::default();
        assert!(dir.set_referrer("u", "b", (200, 0)));
        assert!(!dir.set_referrer("u", "a", (100, 0)), "older, read later");
        assert!(!dir.set_referrer("u", "b", (200, 0)), "the same again");
        assert_eq!(dir.referred_by.get("u".as_bytes()).map(Key::as_str), Some("b"));
        assert!(dir.set_referrer("u", "c", (300, 0)));
        assert_eq!(dir.referred_by.get("u".as_bytes()).map(Key::as_str), Some("c"));
    }

    #[test]
    fn a_code_counts_from_its_earliest_creation_with_its_latest_owner() {
        let mut dir = Directory::default();
        dir.insert_code("c", code("new", (200, 0)));
        dir.insert_code("c", code("old", (100, 0)));
        let info = dir.referrer_of_code("c").cloned();
        assert_eq!(info, Some(code("new", (100, 0))));
        assert!(
            dir.referrer_of_code_at("c", (50, 0)).is_none(),
            "before it was created"
        );
        assert!(dir.referrer_of_code_at("c", (150, 0)).is_some());
    }
}
