//! `DeliveryConfig`: every knob of the delivery tier, with serde defaults.

use serde::Deserialize;

use crate::address::{ForwardedHeader, IpNetwork};

/// Configuration of the delivery tier. Every field has a default (`DeliveryConfig::default()` or `{}` in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Seconds between heartbeat comments on a stream.
    pub heartbeat_secs: u64,
    /// Base of the `retry:` hint sent to EventSource clients, in milliseconds.
    pub retry_base_ms: u64,
    /// Random jitter added to `retry_base_ms` per connection (0..jitter), so reconnects after a restart spread out.
    pub retry_jitter_ms: u64,
    /// Topics in one stream or poll request.
    pub max_topics_per_stream: usize,
    /// Concurrent streams (and long polls) held by one user (`sub`); 0: no limit.
    pub max_streams_per_user: u32,
    /// New streams (and polls) one user may open per minute, and tickets one user may take per minute; 0: no limit.
    pub max_new_streams_per_user_per_minute: u32,
    /// Concurrent streams (and long polls) without a token from one client address (an IPv6 /64); 0: no limit.
    /// Generous by default, as many browsers may share one address behind a NAT; it keeps a single host from
    /// taking every slot of `max_connections`.
    pub max_anonymous_streams_per_address: u32,
    /// New streams (and polls) without a token one client address may open per minute; 0: no limit.
    pub max_new_anonymous_streams_per_address_per_minute: u32,
    /// Proxies (CIDR networks or addresses) whose forwarding header (`forwarded_header`) names the client address;
    /// from any other peer the header is ignored. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<IpNetwork>,
    /// The header the trusted proxies write: `x-forwarded-for` (default) or RFC 7239 `forwarded`. Only that one
    /// is read.
    pub forwarded_header: ForwardedHeader,
    /// Streams held by this process; beyond it new streams get `503` with `Retry-After`.
    pub max_connections: usize,
    /// Messages queued for one connection before it is cut off as too slow (with a resumable position).
    pub connection_queue: usize,
    /// How long history is kept, in seconds (24 h).
    pub history_retention_secs: u64,
    /// Messages kept per topic.
    pub history_max_messages_per_topic: usize,
    /// Bytes of serialized messages kept per topic.
    pub history_max_bytes_per_topic: usize,
    /// Memory the messages of an in-process history may take across all topics (1 GiB; JSON, topic name and
    /// about 120 bytes each); past it the oldest messages go first. The Redis history keeps the per-topic count and age limits.
    pub history_max_total_bytes: usize,
    /// Lifetime of a ticket from `POST /v1/tickets`, in seconds (at most 60).
    pub ticket_ttl_secs: u64,
    /// Tickets outstanding at once (bounded memory).
    pub max_outstanding_tickets: usize,
    /// The cookie that may carry a JWT (HttpOnly, set by the platform's login or the demo).
    pub cookie_name: String,
    /// Upper bound of `?wait=` for `GET /v1/poll`, in seconds.
    pub max_poll_wait_secs: u64,
    /// Upper bound of `?history=N`.
    pub max_history_per_topic: usize,
    /// How long a connection may take to send a whole request head (the first, and each later one on a kept-alive
    /// connection), in milliseconds; then it is closed.
    pub request_head_timeout_ms: u64,
    /// How long a stream's client may take to receive the first chunk (the response head, then a replay or the
    /// start position), in milliseconds; then the stream is dropped, its position unchanged.
    pub first_chunk_timeout_ms: u64,
    /// How long a write on a connection served by the router (long polls, and streams outside the lean path) may
    /// stay blocked by a client that reads nothing, in milliseconds; then the connection is closed, so that its
    /// slot, cut-off and token expiry do not wait on the client.
    pub write_stall_timeout_ms: u64,
    /// How long a connection served by the router may stay silent both ways (a kept-alive connection between
    /// requests), in milliseconds; then it is closed. Never less than twice the longer of the heartbeat interval
    /// and `max_poll_wait_secs`, so that streams and long polls are not taken for idle.
    pub idle_connection_timeout_ms: u64,
    /// The `leaderboard.*` and `trending.*` topics that exist (the pipeline's boards and windows); others are
    /// refused with `404 unknown_topic`, so that anonymous callers cannot make the history keep state for names
    /// nobody publishes on. `None`: any well-formed name.
    pub public_topics: Option<Vec<String>>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            heartbeat_secs: 30,
            retry_base_ms: 2_000,
            retry_jitter_ms: 3_000,
            max_topics_per_stream: 16,
            max_streams_per_user: 8,
            max_new_streams_per_user_per_minute: 60,
            max_anonymous_streams_per_address: 1_000,
            max_new_anonymous_streams_per_address_per_minute: 1_000,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            max_connections: 100_000,
            connection_queue: 256,
            history_retention_secs: 24 * 3600,
            history_max_messages_per_topic: 1_000,
            history_max_bytes_per_topic: 1 << 20,
            history_max_total_bytes: 1 << 30,
            ticket_ttl_secs: 60,
            max_outstanding_tickets: 100_000,
            cookie_name: "social_token".to_owned(),
            max_poll_wait_secs: 30,
            max_history_per_topic: 100,
            request_head_timeout_ms: 30_000,
            first_chunk_timeout_ms: 30_000,
            write_stall_timeout_ms: 30_000,
            idle_connection_timeout_ms: 90_000,
            public_topics: None,
        }
    }
}

impl DeliveryConfig {
    /// `Err(UnknownTopic)` for a public topic outside [`DeliveryConfig::public_topics`].
    pub(crate) fn check_known(&self, topic: &crate::topics::Topic) -> Result<(), crate::DeliveryError> {
        use crate::topics::TopicKind;
        let listed = matches!(topic.kind(), TopicKind::Leaderboard | TopicKind::Trending);
        match &self.public_topics {
            Some(known) if listed && !known.iter().any(|name| name == topic.name()) => {
                Err(crate::DeliveryError::UnknownTopic)
            }
            _ => Ok(()),
        }
    }

    /// The limits of connections served by the router (see `stall.rs`).
    pub(crate) fn io_limits(&self) -> crate::stall::IoLimits {
        // Deadlines are `Instant`s: a limit of years is as good as none and cannot overflow one.
        const LONGEST_MS: u64 = 10 * 365 * 24 * 3600 * 1000;
        let busiest_silence_ms = self
            .heartbeat_secs
            .max(self.max_poll_wait_secs)
            .saturating_mul(2_000);
        let millis = |ms: u64| std::time::Duration::from_millis(ms.clamp(1, LONGEST_MS));
        crate::stall::IoLimits {
            write_stall: millis(self.write_stall_timeout_ms),
            idle: millis(self.idle_connection_timeout_ms.max(busiest_silence_ms)),
        }
    }

    /// The retention of an in-process history.
    pub fn history_retention(&self) -> crate::history::Retention {
        crate::history::Retention {
            max_age: std::time::Duration::from_secs(self.history_retention_secs),
            max_messages: self.history_max_messages_per_topic.max(1),
            max_bytes: self.history_max_bytes_per_topic.max(1),
            max_total_bytes: self.history_max_total_bytes.max(1),
        }
    }

    /// The ticket lifetime actually used: never more than 60 s, never 0.
    pub(crate) fn ticket_ttl_secs(&self) -> u64 {
        self.ticket_ttl_secs.clamp(1, 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_gives_defaults_and_unknown_fields_fail() {
        let config: DeliveryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, DeliveryConfig::default());
        assert_eq!(config.heartbeat_secs, 30);
        assert!(serde_json::from_str::<DeliveryConfig>(r#"{"heartbeat":1}"#).is_err());
        let proxies: DeliveryConfig =
            serde_json::from_str(r#"{"trusted_proxies":["10.0.0.0/8","::1"]}"#).unwrap();
        assert_eq!(proxies.trusted_proxies.len(), 2);
        assert!(serde_json::from_str::<DeliveryConfig>(r#"{"trusted_proxies":["10.0.0.0/40"]}"#).is_err());
    }

    #[test]
    fn io_limits_have_a_floor_and_a_ceiling() {
        let config = DeliveryConfig {
            idle_connection_timeout_ms: 1_000,
            write_stall_timeout_ms: 0,
            ..DeliveryConfig::default()
        };
        let limits = config.io_limits();
        // Twice the 30 s heartbeat and poll wait.
        assert_eq!(limits.idle, std::time::Duration::from_secs(60));
        assert_eq!(limits.write_stall, std::time::Duration::from_millis(1));
        let never = DeliveryConfig {
            idle_connection_timeout_ms: u64::MAX,
            write_stall_timeout_ms: u64::MAX,
            heartbeat_secs: u64::MAX,
            ..DeliveryConfig::default()
        };
        let limits = never.io_limits();
        assert!(tokio::time::Instant::now().checked_add(limits.idle).is_some());
        assert!(
            tokio::time::Instant::now()
                .checked_add(limits.write_stall)
                .is_some()
        );
    }

    #[test]
    fn ticket_ttl_is_capped() {
        let config = DeliveryConfig {
            ticket_ttl_secs: 600,
            ..DeliveryConfig::default()
        };
        assert_eq!(config.ticket_ttl_secs(), 60);
    }
}
