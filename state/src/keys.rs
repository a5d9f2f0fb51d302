//! The Redis key layout of the live state (reference: `docs/REDIS.md`, section "Live state"). Every name starts with
//! a configurable prefix `P` (default `social:`); every key of a topic `T` carries `{T}` as its hash tag, so all
//! keys one write touches live in one slot and the fencing script runs unchanged on Redis Cluster.
//!
//! | name | type | content | complete? |
//! |---|---|---|---|
//! | `P` `state:{T}` | hash | one field per snapshot part (its JSON), plus `_v` (the version of the last write) | complete: exactly what `SNAPSHOT` shows |
//! | `P` `lb:{leaderboard.B}` | sorted set | user id -> completed referrals in the current period | top-N view (visible users only) |
//! | `P` `counters:{user.U.referrals}` | hash | the user's all-time counts (`clicks`, `flaggedClicks`, …) | complete |
//! | `P` `reward:{user.U.referrals}:PROG` | hash | `completed`, `tierLevel`, `progress`, `nextThreshold`, `remaining` | complete |
//! | `P` `trending:{trending.W}` | sorted set | content id -> count in the window | top-K view |

use crate::StateError;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "social:";

/// The field of `state:{T}` that holds the version of the last write; no snapshot part may be named so.
pub const VERSION_FIELD: &str = "_v";

/// Builds every key name from one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateKeys {
    prefix: String,
}

impl StateKeys {
    /// A layout under `prefix`. The prefix may not contain `{` or `}` (it would capture the hash tag) nor control
    /// characters.
    pub fn new(prefix: &str) -> Result<StateKeys, StateError> {
        if prefix.len() > 128 || prefix.chars().any(|c| c == '{' || c == '}' || c.is_control()) {
            return Err(StateError::Config(
                "the key prefix must be at most 128 characters, without braces or control characters".into(),
            ));
        }
        Ok(StateKeys {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash of a topic's snapshot parts and write version.
    pub fn state(&self, topic: &str) -> String {
        format!("{}state:{{{topic}}}", self.prefix)
    }

    /// The sorted set of a leaderboard topic (`leaderboard.daily`).
    pub fn leaderboard(&self, topic: &str) -> String {
        format!("{}lb:{{{topic}}}", self.prefix)
    }

    /// The hash of a user's all-time referral counters (topic `user.{id}.referrals`).
    pub fn counters(&self, topic: &str) -> String {
        format!("{}counters:{{{topic}}}", self.prefix)
    }

    /// The hash of a user's progress in one program (topic `user.{id}.referrals`).
    pub fn reward(&self, topic: &str, program: &str) -> String {
        format!("{}reward:{{{topic}}}:{program}", self.prefix)
    }

    /// The sorted set of a trending window topic (`trending.1h`).
    pub fn trending(&self, topic: &str) -> String {
        format!("{}trending:{{{topic}}}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster hashes: the text between the first `{` and the next `}`, when not empty.
    fn hash_tag(key: &str) -> &str {
        key.find('{')
            .and_then(|open| {
                let rest = key.get(open + 1..)?;
                let close = rest.find('}')?;
                (close > 0).then(|| rest.get(..close)).flatten()
            })
            .unwrap_or(key)
    }

    #[test]
    fn every_key_of_a_topic_has_the_topic_as_hash_tag() {
        let keys = StateKeys::new("p:").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.state("user.u1.referrals"), "p:state:{user.u1.referrals}");
        assert_eq!(keys.leaderboard("leaderboard.daily"), "p:lb:{leaderboard.daily}");
        assert_eq!(
            keys.reward("user.u1.referrals", "p1"),
            "p:reward:{user.u1.referrals}:p1"
        );
        for key in [
            keys.state("user.u1.referrals"),
            keys.counters("user.u1.referrals"),
            keys.reward("user.u1.referrals", "p{x}"),
        ] {
            assert_eq!(hash_tag(&key), "user.u1.referrals");
        }
        assert_eq!(hash_tag(&keys.trending("trending.1h")), "trending.1h");
    }

    #[test]
    fn prefixes_with_braces_are_refused() {
        assert!(StateKeys::new("a{b}:").is_err());
        assert!(StateKeys::new("a\n").is_err());
        assert!(StateKeys::new("").is_ok());
    }
}
