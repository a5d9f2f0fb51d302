//! Topic names of CONTRACT section 3: parsing, the kind of a topic (a small fixed set, used as a metric label) and
//! the access rule of each kind.

use std::fmt;

use social_auth::Claims;
use social_schemas::validate::is_valid_id;

use crate::DeliveryError;

/// Longest accepted topic name.
pub const MAX_TOPIC_LEN: usize = 200;

/// The kinds of topic; `as_str` values are the only values of the `kind` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    UserSocial,
    UserReferrals,
    UserNetwork,
    ProgramUpdates,
    Leaderboard,
    Trending,
    TestimonialsRecent,
}

impl TopicKind {
    pub const ALL: [TopicKind; 7] = [
        TopicKind::UserSocial,
        TopicKind::UserReferrals,
        TopicKind::UserNetwork,
        TopicKind::ProgramUpdates,
        TopicKind::Leaderboard,
        TopicKind::Trending,
        TopicKind::TestimonialsRecent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::UserSocial => "user_social",
            TopicKind::UserReferrals => "user_referrals",
            TopicKind::UserNetwork => "user_network",
            TopicKind::ProgramUpdates => "program_updates",
            TopicKind::Leaderboard => "leaderboard",
            TopicKind::Trending => "trending",
            TopicKind::TestimonialsRecent => "testimonials_recent",
        }
    }

    /// Whether anyone, even without a token, may read topics of this kind.
    pub fn is_public(self) -> bool {
        matches!(
            self,
            TopicKind::Leaderboard | TopicKind::Trending | TopicKind::TestimonialsRecent
        )
    }
}

/// A parsed, valid topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic {
    name: String,
    kind_index: u8,
    /// Byte range of the id segment (user, program, board or window) in `name`; empty for `testimonials.recent`.
    segment: (u16, u16),
}

impl Topic {
    /// Parses `user.{userId}.social|referrals|network`, `program.{programId}.updates`, `leaderboard.{boardId}`,
    /// `trending.{window}` or `testimonials.recent`. Id segments are the ids of events: 1 to 128 characters of
    /// `[A-Za-z0-9._:-]`.
    pub fn parse(name: &str) -> Result<Topic, DeliveryError> {
        if name.len() > MAX_TOPIC_LEN {
            return Err(DeliveryError::InvalidTopic);
        }
        let (kind, segment) = if name == "testimonials.recent" {
            (TopicKind::TestimonialsRecent, (0, 0))
        } else if let Some(rest) = name.strip_prefix("user.") {
            let (id, suffix) = rest.rsplit_once('.').ok_or(DeliveryError::InvalidTopic)?;
            let kind = match suffix {
                "social" => TopicKind::UserSocial,
                "referrals" => TopicKind::UserReferrals,
                "network" => TopicKind::UserNetwork,
                _ => return Err(DeliveryError::InvalidTopic),
            };
            (kind, segment_range(name, 5, id)?)
        } else if let Some(rest) = name.strip_prefix("program.") {
            let id = rest.strip_suffix(".updates").ok_or(DeliveryError::InvalidTopic)?;
            (TopicKind::ProgramUpdates, segment_range(name, 8, id)?)
        } else if let Some(id) = name.strip_prefix("leaderboard.") {
            (TopicKind::Leaderboard, segment_range(name, 12, id)?)
        } else if let Some(id) = name.strip_prefix("trending.") {
            (TopicKind::Trending, segment_range(name, 9, id)?)
        } else {
            return Err(DeliveryError::InvalidTopic);
        };
        let kind_index = TopicKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8;
        Ok(Topic {
            name: name.to_owned(),
            kind_index,
            segment,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> TopicKind {
        TopicKind::ALL[usize::from(self.kind_index) % TopicKind::ALL.len()]
    }

    /// The id segment: the user of a `user.*` topic, the program of a `program.*` topic, the board or window.
    pub fn segment(&self) -> &str {
        self.name
            .get(usize::from(self.segment.0)..usize::from(self.segment.1))
            .unwrap_or("")
    }

    /// The access rule of CONTRACT section 3. `claims` is `None` for an anonymous caller.
    pub fn check_access(&self, claims: Option<&Claims>) -> Result<(), DeliveryError> {
        let kind = self.kind();
        if kind.is_public() {
            return Ok(());
        }
        let Some(claims) = claims else {
            return Err(DeliveryError::Auth(social_auth::AuthError::MissingToken));
        };
        if claims.is_admin() {
            return Ok(());
        }
        let allowed = match kind {
            TopicKind::UserSocial | TopicKind::UserReferrals | TopicKind::UserNetwork => {
                claims.sub == self.segment()
            }
            TopicKind::ProgramUpdates => claims.is_member_of(self.segment()),
            TopicKind::Leaderboard | TopicKind::Trending | TopicKind::TestimonialsRecent => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(DeliveryError::Forbidden)
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

fn segment_range(name: &str, start: usize, id: &str) -> Result<(u16, u16), DeliveryError> {
    // The ids events carry, dots included: the kind is read from the fixed prefix and suffix, so a dot in the id
    // is not ambiguous (`user.jane.doe.referrals` is jane.doe's).
    if !is_valid_id(id) {
        return Err(DeliveryError::InvalidTopic);
    }
    debug_assert_eq!(name.get(start..start + id.len()), Some(id));
    let end = start + id.len();
    Ok((
        u16::try_from(start).map_err(|_| DeliveryError::InvalidTopic)?,
        u16::try_from(end).map_err(|_| DeliveryError::InvalidTopic)?,
    ))
}

/// Topics one resume token can hold, so the most a stream may name whatever the configuration says.
pub const MAX_TOPICS: usize = 255;

/// Parses, de-duplicates and sorts the topics of a request, so that the same set always gives the same resume tokens.
/// `max` is capped at [`MAX_TOPICS`]. A request naming more than `max` distinct topics, or repeating names more than
/// four times `max` (at least 64) in all, is refused whole: no topic is ever dropped silently.
pub fn parse_topic_set<'a>(
    names: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Result<Vec<Topic>, DeliveryError> {
    let max = max.min(MAX_TOPICS);
    let too_many = DeliveryError::TooManyTopics {
        max,
        retry_after_secs: 60,
    };
    let mut topics = Vec::new();
    for name in names {
        if topics.len() >= max.saturating_mul(4).max(64) {
            return Err(too_many);
        }
        topics.push(Topic::parse(name)?);
    }
    topics.sort();
    topics.dedup();
    if topics.is_empty() {
        return Err(DeliveryError::NoTopics);
    }
    if topics.len() > max {
        return Err(too_many);
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, programs: &[&str], roles: &[&str]) -> Claims {
        Claims {
            sub: sub.into(),
            exp: u64::MAX,
            nbf: None,
            iat: None,
            iss: None,
            aud: None,
            programs: programs.iter().map(|p| p.to_string()).collect(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn parses_every_kind() {
        let cases = [
            ("user.u1.social", TopicKind::UserSocial, "u1"),
            ("user.user-7.referrals", TopicKind::UserReferrals, "user-7"),
            ("user.u1.network", TopicKind::UserNetwork, "u1"),
            (
                "program.program-standard.updates",
                TopicKind::ProgramUpdates,
                "program-standard",
            ),
            ("leaderboard.all-time", TopicKind::Leaderboard, "all-time"),
            ("trending.1h", TopicKind::Trending, "1h"),
            ("testimonials.recent", TopicKind::TestimonialsRecent, ""),
            // Ids may hold dots, as the ids of events may.
            ("user.jane.doe.referrals", TopicKind::UserReferrals, "jane.doe"),
            ("user.a.social.social", TopicKind::UserSocial, "a.social"),
            (
                "program.acme.2024.updates",
                TopicKind::ProgramUpdates,
                "acme.2024",
            ),
        ];
        for (name, kind, segment) in cases {
            let topic = Topic::parse(name).unwrap();
            assert_eq!(
                (topic.kind(), topic.segment(), topic.name()),
                (kind, segment, name)
            );
        }
    }

    #[test]
    fn rejects_malformed() {
        for name in [
            "",
            "user..social",
            "user.u1.other",
            "user.a b.social",
            "user.a/b.social",
            "program.p1",
            "leaderboard.",
            "trending.1h\n",
            "testimonials.old",
            "foo.bar",
            "user.u 1.social",
        ] {
            assert_eq!(Topic::parse(name), Err(DeliveryError::InvalidTopic), "{name:?}");
        }
        assert!(Topic::parse(&format!("leaderboard.{}", "x".repeat(300))).is_err());
    }

    #[test]
    fn access_rules() {
        let owner = claims("u1", &[], &[]);
        let other = claims("u2", &["p1"], &[]);
        let admin = claims("root", &[], &["admin"]);
        let own = Topic::parse("user.u1.referrals").unwrap();
        assert!(own.check_access(Some(&owner)).is_ok());
        assert_eq!(own.check_access(Some(&other)), Err(DeliveryError::Forbidden));
        assert!(own.check_access(Some(&admin)).is_ok());
        assert!(matches!(own.check_access(None), Err(DeliveryError::Auth(_))));
        let dotted = Topic::parse("user.jane.doe.social").unwrap();
        assert!(dotted.check_access(Some(&claims("jane.doe", &[], &[]))).is_ok());
        assert_eq!(
            dotted.check_access(Some(&claims("jane", &[], &[]))),
            Err(DeliveryError::Forbidden)
        );
        let program = Topic::parse("program.p1.updates").unwrap();
        assert!(program.check_access(Some(&other)).is_ok());
        assert_eq!(program.check_access(Some(&owner)), Err(DeliveryError::Forbidden));
        assert!(
            Topic::parse("leaderboard.daily")
                .unwrap()
                .check_access(None)
                .is_ok()
        );
    }

    #[test]
    fn topic_sets_are_sorted_deduplicated_and_bounded() {
        let set = parse_topic_set(["trending.1h", "leaderboard.daily", "trending.1h"], 4).unwrap();
        let names: Vec<&str> = set.iter().map(Topic::name).collect();
        assert_eq!(names, ["leaderboard.daily", "trending.1h"]);
        assert_eq!(parse_topic_set([], 4), Err(DeliveryError::NoTopics));
        assert!(matches!(
            parse_topic_set(["trending.1", "trending.2", "trending.3"], 2),
            Err(DeliveryError::TooManyTopics { .. })
        ));
    }

    #[test]
    fn no_topic_is_dropped_silently() {
        // Repeats beyond the bound refuse the request rather than losing the distinct name that follows them.
        let mut names = vec!["trending.1h"; 64];
        names.push("trending.24h");
        assert!(matches!(
            parse_topic_set(names.iter().copied(), 4),
            Err(DeliveryError::TooManyTopics { max: 4, .. })
        ));
        assert_eq!(
            parse_topic_set(names[1..].iter().copied(), 4).map(|set| set.len()),
            Ok(2)
        );
        // A configured maximum beyond what a resume token holds is capped.
        let many: Vec<String> = (0..256).map(|i| format!("trending.{i}")).collect();
        assert!(matches!(
            parse_topic_set(many.iter().map(String::as_str), 1_000),
            Err(DeliveryError::TooManyTopics { max: MAX_TOPICS, .. })
        ));
        assert_eq!(
            parse_topic_set(many[1..].iter().map(String::as_str), 1_000).map(|set| set.len()),
            Ok(255)
        );
    }
}
