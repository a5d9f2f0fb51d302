//! The Redis key layout of the delivery tier. Every name starts with a configurable prefix `P` (the library's
//! default is `social:delivery:`; the `social-realtime` binary passes its `--redis-prefix`, `social:` by default), so several deployments (and parallel tests) share one Redis without meeting. The per-topic
//! keys carry the topic as a hash tag (`{T}`), so a topic's keys live in one slot and its Lua scripts run unchanged on
//! Redis Cluster.
//!
//! | name | type | content | lifetime |
//! |---|---|---|---|
//! | `P` `meta:{T}` | hash | `epoch` (decimal `u64`, never 0), `last` (offset of the newest message), `time` (its Redis time, ms), `seq` (the producer's number of the newest message, when published with one), `oldest` (a lower bound of the oldest entry's time), `renewed` (when the TTLs were last set) | `meta_ttl` (7 d) plus the renewal interval, renewed by the first append after each renewal interval |
//! | `P` `history:{T}` | stream | one entry per message, id `<offset>-0`, fields `t` (Redis time, ms) and `d` (message JSON) | `MAXLEN ~` cap, `MINID` past the retention (24 h), whole key expires a retention (plus at most one renewal interval) after the last append |
//! | `P` `ticket:<ticket>` | string | the JSON claims a single-use ticket stands for | `EX` the ticket lifetime (at most 60 s), consumed by `GETDEL` |
//! | `P` `streams:{S}` | sorted set | the open streams on every node of `S`, `user:<id>` or `addr:<address>` (an anonymous client): member a lease id (`<node>:<n>`), score its expiry (Redis time, ms) | renewed by the holding node every third of the lease time (60 s), removed when the stream ends; the key expires a lease time after the last admission or renewal |
//! | `P` `opened:{S}:M` | string | streams `S` opened in Unix minute `M`, on every node | `EXPIRE` 120 s |
//! | `P` `tickets:{user:<id>}:M` | string | tickets issued to the user in Unix minute `M`, on every node | `EXPIRE` 120 s |
//! | `P` `fanout` | pub/sub channel | every entry one append call added, each as `<epoch> <offset> <time ms> <JSON length> <topic>\n<message JSON>`, concatenated | every node `SUBSCRIBE`s it |
//!
//! The epoch and the offset counter live in one hash, so they vanish together (a flush, an eviction, the meta TTL):
//! the next append or subscription then creates a fresh random epoch (and drops any stream left behind), and
//! clients holding a position of the old epoch get a `RESET`. A stream that vanished while its meta survived means
//! "expired", exactly as [`MemoryHistory`](crate::MemoryHistory) reports it.

use super::RedisBackendError;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "social:delivery:";

/// Builds every key and channel name from one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// A layout under `prefix`. The prefix may not contain `{` or `}` (it would capture the hash tag) nor control
    /// characters.
    pub fn new(prefix: &str) -> Result<Keys, RedisBackendError> {
        if prefix.len() > 128 || prefix.chars().any(|c| c == '{' || c == '}' || c.is_control()) {
            return Err(RedisBackendError::Config(
                "the key prefix must be at most 128 characters, without braces or control characters".into(),
            ));
        }
        Ok(Keys {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash holding a topic's epoch and last offset.
    pub fn meta(&self, topic: &str) -> String {
        format!("{}meta:{{{topic}}}", self.prefix)
    }

    /// The stream holding a topic's retained messages.
    pub fn history(&self, topic: &str) -> String {
        format!("{}history:{{{topic}}}", self.prefix)
    }

    /// The string holding the claims of one outstanding ticket.
    pub fn ticket(&self, ticket: &str) -> String {
        format!("{}ticket:{ticket}", self.prefix)
    }

    /// The sorted set of the open streams counted under `counted` (`user:<id>` or `addr:<address>`) on every node
    /// (member: lease id, score: lease expiry in ms).
    pub fn streams(&self, counted: &str) -> String {
        format!("{}streams:{{{counted}}}", self.prefix)
    }

    /// The number of streams counted under `counted` opened in the minute `minute` (Unix minutes), on every node;
    /// same hash tag as [`Keys::streams`].
    pub fn opened(&self, counted: &str, minute: u64) -> String {
        format!("{}opened:{{{counted}}}:{minute}", self.prefix)
    }

    /// The number of tickets issued to `user` in the minute `minute` (Unix minutes), on every node; same hash tag
    /// as the user's [`Keys::streams`].
    pub fn tickets(&self, user: &str, minute: u64) -> String {
        format!("{}tickets:{{user:{user}}}:{minute}", self.prefix)
    }

    /// The pub/sub channel carrying every topic's live messages, one message per append call.
    pub fn channel(&self) -> String {
        format!("{}fanout", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_keys_share_one_hash_tag() {
        let keys = Keys::new("p:").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.meta("user.u1.social"), "p:meta:{user.u1.social}");
        assert_eq!(keys.history("user.u1.social"), "p:history:{user.u1.social}");
        assert_eq!(keys.channel(), "p:fanout");
        assert_eq!(keys.ticket("abc"), "p:ticket:abc");
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(Keys::new("a{b}:").is_err());
        assert!(Keys::new("a\n").is_err());
        assert!(Keys::new("t*[1]:").is_ok());
    }
}
