//! Social activity: registrations, profile updates (privacy and connections), shares, engagements, messages.

use rand::Rng;

use super::emit::{
    Connections, EngagerInfo, MessageSent, Payload, Privacy, ProfileUpdated, ShareCreated, ShareEngaged,
    ShareMetadata, UserRegistered,
};
use super::ids::{ContentRef, Id, Name, Role};
use super::model::{
    ANONYMOUS_REFERRALS, Followup, INCOGNITO, MAX_CONNECTIONS, NO_BROADCAST, PRIVATE_REWARDS,
    SHARES_PER_CONTENT, ShareRef, World, warming_up,
};
use super::tables;

const ENGAGEMENT_TYPES: &[(&str, u32)] = &[
    ("view", 40),
    ("like", 28),
    ("click", 12),
    ("comment", 8),
    ("share", 6),
    ("save", 6),
];
const MESSAGE_CONTEXTS: &[(&str, u32)] = &[
    ("share", 35),
    ("referral", 25),
    ("project", 30),
    ("testimonial", 10),
];
const PRIVACY_BITS: [u8; 4] = [NO_BROADCAST, INCOGNITO, ANONYMOUS_REFERRALS, PRIVATE_REWARDS];

fn share_format(platform: &str, r: f64) -> Option<&'static str> {
    if r < 0.15 {
        return None;
    }
    Some(match platform {
        "instagram" if r < 0.65 => "story",
        "facebook" if r < 0.3 => "story",
        "whatsapp" | "sms" | "email" => "message",
        "copy_link" | "other" => "link",
        _ => "post",
    })
}

impl World {
    /// A new account, with an optional referral code; a user who prefers non-default privacy settings saves them
    /// shortly after signing up.
    pub(crate) fn register(&mut self, role: Role, code: Option<u32>) -> (u32, Payload) {
        let user = self.add_user(role, self.now);
        if self.user(user).privacy_pref != 0 {
            self.schedule(2.0, 60.0, Followup::Privacy { user });
        }
        let display_name = self.chance(0.9).then(|| self.user(user).name());
        let payload = Payload::UserRegistered(UserRegistered {
            user_id: Id::user(user),
            role: role.as_str(),
            referral_code: code.map(|c| self.codes[c as usize].id),
            display_name,
        });
        (user, payload)
    }

    pub(crate) fn profile_updated(&mut self) -> Option<Payload> {
        let user = self.active_user()?;
        let r: f64 = self.rng.random();
        if r < 0.45
            && let Some(payload) = self.connections_update(user)
        {
            return Some(payload);
        }
        if r < 0.8 {
            let full = self.chance(0.6);
            return Some(self.privacy_update(user, full));
        }
        let u = self.user_mut(user);
        u.name_variant ^= 1;
        let name = u.name();
        Some(Payload::ProfileUpdated(ProfileUpdated {
            user_id: Id::user(user),
            display_name: Some(name),
            privacy: None,
            connections: None,
        }))
    }

    fn connections_update(&mut self, user: u32) -> Option<Payload> {
        let mut update = Connections::default();
        let existing = self.user(user).connections.len();
        if existing > 0 && self.chance(0.2) {
            let slot = self.rng.random_range(0..existing);
            update
                .removed
                .push(Id::user(self.user_mut(user).connections.remove(slot)));
        }
        if update.removed.is_empty() || self.chance(0.3) {
            let want = self.rng.random_range(1..=3);
            for _ in 0..want {
                // Popular users collect more connections.
                let Some(friend) = self.active_user() else { break };
                let connections = &mut self.user_mut(user).connections;
                if friend == user || connections.contains(&friend) {
                    continue;
                }
                if connections.len() >= MAX_CONNECTIONS {
                    connections.remove(0);
                }
                connections.push(friend);
                update.added.push(Id::user(friend));
            }
        }
        if update.added.is_empty() && update.removed.is_empty() {
            return None;
        }
        Some(Payload::ProfileUpdated(ProfileUpdated {
            user_id: Id::user(user),
            display_name: None,
            privacy: None,
            connections: Some(update),
        }))
    }

    /// `friend` joins `user`'s connections (after a referred sign-up).
    pub(crate) fn connect(&mut self, user: u32, friend: u32) -> Payload {
        let connections = &mut self.user_mut(user).connections;
        if !connections.contains(&friend) {
            if connections.len() >= MAX_CONNECTIONS {
                connections.remove(0);
            }
            connections.push(friend);
        }
        Payload::ProfileUpdated(ProfileUpdated {
            user_id: Id::user(user),
            display_name: None,
            privacy: None,
            connections: Some(Connections {
                added: vec![Id::user(friend)],
                removed: Vec::new(),
            }),
        })
    }

    /// Privacy settings move towards the user's preference (now and then a user tries the other setting).
    /// `full`: all four settings are sent; otherwise only the one that changed.
    pub(crate) fn privacy_update(&mut self, user: u32, full: bool) -> Payload {
        let (pref, current) = (self.user(user).privacy_pref, self.user(user).privacy);
        let differing: Vec<u8> = PRIVACY_BITS
            .iter()
            .copied()
            .filter(|b| (pref ^ current) & b != 0)
            .collect();
        let bit = match self.one_of(&differing) {
            Some(bit) => bit,
            None => PRIVACY_BITS[self.rng.random_range(0..PRIVACY_BITS.len())],
        };
        let towards_pref = self.chance(0.85);
        let set = (pref & bit != 0) == towards_pref;
        let next = if set { current | bit } else { current & !bit };
        self.user_mut(user).privacy = next;
        let shown = |b: u8| (full || b == bit).then_some(next & b != 0);
        Payload::ProfileUpdated(ProfileUpdated {
            user_id: Id::user(user),
            display_name: None,
            privacy: Some(Privacy {
                activity_broadcast: shown(NO_BROADCAST).map(|off| !off),
                incognito: shown(INCOGNITO),
                anonymous_referrals: shown(ANONYMOUS_REFERRALS),
                private_rewards: shown(PRIVATE_REWARDS),
            }),
            connections: None,
        })
    }

    /// Something `user` could share of their own, with the content index it already has.
    fn own_content(&mut self, user: u32) -> Option<(ContentRef, Option<u32>)> {
        let role = self.user(user).role;
        let public_project = {
            let projects: Vec<u32> = self
                .user(user)
                .projects
                .iter()
                .copied()
                .filter(|p| self.projects[*p as usize].public)
                .collect();
            self.one_of(&projects)
        };
        let testimonial = {
            let list = self.user(user).testimonials.clone();
            self.one_of(&list)
        };
        let code = {
            let list: Vec<u32> = self.user(user).codes.iter().map(|(_, c)| *c).collect();
            self.one_of(&list)
        };
        // (choice, weight): 0 project, 1 testimonial, 2 referral link, 3 profile, 4 portfolio.
        let weights: [u32; 5] = match role {
            Role::Homeowner => [45, 10, 25, 10, 0],
            Role::Contractor => [15, 25, 15, 10, 35],
            Role::Partner => [0, 0, 60, 20, 20],
        };
        let available = [
            public_project.is_some(),
            testimonial.is_some(),
            code.is_some(),
            true,
            true,
        ];
        let table: Vec<(usize, u32)> = (0..5)
            .filter(|i| available[*i])
            .map(|i| (i, weights[i]))
            .filter(|(_, w)| *w > 0)
            .collect();
        let choice = self.weighted(&table)?;
        let u = self.user(user);
        Some(match (choice, public_project, testimonial, code) {
            (0, Some(p), _, _) => (ContentRef::Project(p), self.projects[p as usize].content),
            (1, _, Some(t), _) => (ContentRef::Testimonial(t), self.testimonials[t as usize].content),
            (2, _, _, Some(c)) => {
                let code = &self.codes[c as usize];
                (ContentRef::ReferralLink(code.id), code.content)
            }
            (4, ..) => (ContentRef::Portfolio(user), u.portfolio_content),
            _ => (ContentRef::Profile(user), u.profile_content),
        })
    }

    /// Remembers the content index of `what` where it belongs.
    fn store_content_index(&mut self, user: u32, what: ContentRef, index: u32) {
        match what {
            ContentRef::Project(p) => self.projects[p as usize].content = Some(index),
            ContentRef::Testimonial(t) => self.testimonials[t as usize].content = Some(index),
            ContentRef::Profile(_) => self.user_mut(user).profile_content = Some(index),
            ContentRef::Portfolio(_) => self.user_mut(user).portfolio_content = Some(index),
            ContentRef::ReferralLink(id) => {
                if let Some(code) = self
                    .user(user)
                    .codes
                    .iter()
                    .map(|(_, c)| *c)
                    .find(|c| self.codes[*c as usize].id == id)
                {
                    self.codes[code as usize].content = Some(index);
                }
            }
        }
    }

    /// A popular content item (by engagement rank).
    fn popular_content(&mut self) -> Option<u32> {
        if self.content_rank.is_empty() {
            return None;
        }
        let rank = self.content_zipf.sample(&mut self.rng, self.content_rank.len());
        Some(self.content_rank[rank])
    }

    /// One of the remembered shares of `content` created before now.
    fn share_of(&mut self, content: u32) -> Option<ShareRef> {
        let shares = &self.contents[content as usize].shares;
        if shares.is_empty() {
            return None;
        }
        let pick = shares[self.rng.random_range(0..shares.len())];
        if pick.created_ms < self.now {
            return Some(pick);
        }
        shares.first().copied().filter(|s| s.created_ms < self.now)
    }

    pub(crate) fn share_created(&mut self) -> Option<Payload> {
        let user = self.active_user()?;
        // A fifth of shares pass on something popular (never someone else's referral link).
        let reshare = if self.chance(0.2) {
            self.popular_content()
                .filter(|c| !matches!(self.contents[*c as usize].what, ContentRef::ReferralLink(_)))
        } else {
            None
        };
        let (what, index) = match reshare {
            Some(index) => (self.contents[index as usize].what, index),
            None => {
                let (what, existing) = self.own_content(user)?;
                let index = self.content_index(what, existing);
                self.store_content_index(user, what, index);
                (what, index)
            }
        };
        let platform = self.weighted(tables::PLATFORMS).unwrap_or("other");
        let format_roll: f64 = self.rng.random();
        let metadata = self.chance(0.7).then(|| {
            let messages = tables::SHARE_MESSAGES[what.type_index()];
            ShareMetadata {
                message: self
                    .chance(0.8)
                    .then(|| messages[self.rng.random_range(0..messages.len())]),
                image_count: match what {
                    ContentRef::Project(_) | ContentRef::Portfolio(_) => Some(self.rng.random_range(1..=12)),
                    _ => self.chance(0.5).then(|| self.rng.random_range(0..=1)),
                },
                visibility: self.weighted(&[("public", 80), ("friends", 15), ("private", 5)]),
            }
        });
        self.ids.share += 1;
        let share = ShareRef {
            id: self.ids.share,
            platform,
            sharer: user,
            created_ms: self.now,
        };
        let shares = &mut self.contents[index as usize].shares;
        if shares.len() >= SHARES_PER_CONTENT {
            shares.remove(0);
        }
        shares.push(share);
        Some(Payload::ShareCreated(ShareCreated {
            share_id: Id {
                prefix: "share",
                n: share.id,
            },
            user_id: Id::user(user),
            content_type: what.content_type(),
            content_id: what,
            platform,
            share_format: share_format(platform, format_roll),
            metadata,
        }))
    }

    pub(crate) fn share_engaged(&mut self) -> Option<Payload> {
        if warming_up(&mut self.rng, self.content_rank.len(), 200) {
            return None;
        }
        let content = self.popular_content()?;
        let share = self.share_of(content)?;
        let engagement_type = self.weighted(ENGAGEMENT_TYPES).unwrap_or("view");
        let member = if self.chance(0.35) {
            self.other_user(share.sharer)
        } else {
            None
        };
        let display_name = if self.chance(0.6) {
            Some(match member {
                Some(m) => self.user(m).name(),
                None => Name {
                    role: Role::Homeowner,
                    hash: self.rng.random(),
                    variant: 0,
                },
            })
        } else {
            None
        };
        Some(Payload::ShareEngaged(ShareEngaged {
            share_id: Id {
                prefix: "share",
                n: share.id,
            },
            engagement_type,
            engager_info: EngagerInfo {
                user_id: member.map(Id::user),
                platform: self.chance(0.9).then_some(share.platform),
                display_name,
            },
            content_id: Some(self.contents[content as usize].what),
        }))
    }

    pub(crate) fn message_sent(&mut self) -> Option<Payload> {
        let context = self.weighted(MESSAGE_CONTEXTS)?;
        let (sender, recipient, share_id) = match context {
            "share" => {
                let content = self.popular_content()?;
                let share = self.share_of(content)?;
                let sender = self.other_user(share.sharer)?;
                (
                    sender,
                    share.sharer,
                    Some(Id {
                        prefix: "share",
                        n: share.id,
                    }),
                )
            }
            "referral" => {
                let sender = self.active_user()?;
                let friends = self.user(sender).connections.clone();
                let recipient = match self.one_of(&friends) {
                    Some(friend) => friend,
                    None => self.other_user(sender)?,
                };
                (sender, recipient, None)
            }
            "project" => {
                if self.awarded_projects.is_empty() {
                    return None;
                }
                let project = self.awarded_projects[self.rng.random_range(0..self.awarded_projects.len())];
                let p = &self.projects[project as usize];
                let (owner, contractor) = (p.owner, p.contractor?);
                if self.chance(0.5) {
                    (owner, contractor, None)
                } else {
                    (contractor, owner, None)
                }
            }
            _ => {
                if self.testimonial_rank.is_empty() {
                    return None;
                }
                let rank = self
                    .testimonial_zipf
                    .sample(&mut self.rng, self.testimonial_rank.len());
                let t = &self.testimonials[self.testimonial_rank[rank] as usize];
                if t.published_ms >= self.now {
                    return None;
                }
                let (author, subject) = (t.author, t.subject);
                if self.chance(0.7) {
                    (subject, author, None)
                } else {
                    (author, subject, None)
                }
            }
        };
        if sender == recipient {
            return None;
        }
        self.ids.message += 1;
        Some(Payload::MessageSent(MessageSent {
            message_id: Id {
                prefix: "msg",
                n: self.ids.message,
            },
            sender_id: Id::user(sender),
            recipient_id: Id::user(recipient),
            context,
            share_id,
        }))
    }
}
