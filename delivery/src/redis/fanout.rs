//! Live fan-out between nodes over Redis pub/sub.
//!
//! The append script of [`RedisHistory`](super::RedisHistory) publishes every entry it appends, in the same atomic
//! step that assigns their offsets, as one message on the prefix's fan-out channel, so the publish order is the
//! offset order, and one subscriber connection receives every topic's entries in offset order.
//! [`RedisFanOut::publish`] therefore has nothing left to send. Each node runs one listener: a `SUBSCRIBE` to the
//! fan-out channel whose entries go to the node's [`Hub`] (entries of topics without local subscribers cost a
//! lookup, and are not copied).
//!
//! Pub/sub is at most once: while the listener is disconnected, messages are lost. Sessions already fill a gap from
//! history when the next entry of a topic arrives; on top of that the listener remembers the last position it
//! delivered per topic that has local subscribers, and after a reconnect (subscribe first, then read history) it
//! delivers what history holds after those positions, and, in a task beside its pump, the last message of every other
//! topic with local subscribers (streams that opened while it was away, or whose topic had no message on this node
//! yet): a session behind that message fills its gap from history then, not at the topic's next message, which on
//! a quiet topic may never come. Sessions drop what they already have, so nothing is doubled.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use redis::Value;
use redis::aio::{PubSubSink, PubSubStream};
use rustc_hash::FxHashMap;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::RedisBackendError;
use super::history::{RedisHistory, instant_of};
use super::keys::Keys;
use crate::DeliveryError;
use crate::fanout::FanOut;
use crate::history::{Entry, History, Position, Replay};
use crate::hub::Hub;

/// The fan-out half of the Redis backend. Publishing happens inside the history append (atomically with the offset),
/// so `publish` only has to succeed; this node's hub is fed by the listener that [`RedisBackend::fanout`](
/// super::RedisBackend::fanout) starts.
pub struct RedisFanOut {
    _private: (),
}

impl RedisFanOut {
    pub(crate) fn new() -> RedisFanOut {
        RedisFanOut { _private: () }
    }
}

#[async_trait]
impl FanOut for RedisFanOut {
    async fn publish(&self, _entry: Arc<Entry>) -> Result<(), DeliveryError> {
        Ok(())
    }
}

/// Everything a listener needs, gathered before the hub exists.
pub(crate) struct ListenerParts {
    /// Tried in turn, one per attempt: a single server, or the seeds of a cluster (one node of a cluster
    /// receives every `PUBLISH` of the cluster).
    pub clients: Vec<redis::Client>,
    pub keys: Arc<Keys>,
    pub history: Arc<RedisHistory>,
    pub subscribed: Arc<watch::Sender<bool>>,
    pub shutdown: CancellationToken,
    pub ping_interval: Duration,
    pub connect_timeout: Duration,
    pub max_backoff: Duration,
    pub recover_max: usize,
}

/// Starts the listener of `hub` on `tasks`. Outside a Tokio runtime it logs and leaves the node unsubscribed.
pub(crate) fn start_listener(parts: ListenerParts, hub: Arc<Hub>, tasks: &TaskTracker) {
    if tokio::runtime::Handle::try_current().is_err() {
        tracing::error!(
            "redis fan-out listener needs a tokio runtime; live messages from redis are not received"
        );
        return;
    }
    let listener = Listener {
        parts,
        hub,
        seen: FxHashMap::default(),
        attempts: 0,
        unseen_recovery: None,
    };
    tasks.spawn(listener.run());
}

struct Listener {
    parts: ListenerParts,
    hub: Arc<Hub>,
    /// The last position delivered per topic that had local subscribers then (pruned on every ping).
    seen: FxHashMap<Arc<str>, Position>,
    /// Subscription attempts so far (picks the client of the next one).
    attempts: usize,
    /// The recovery of topics without a position, running beside the pump (see [`Listener::recover_unseen`]).
    unseen_recovery: Option<tokio::task::JoinHandle<()>>,
}

/// Why the pump stopped.
enum Stopped {
    Shutdown,
    Lost,
}

impl Listener {
    async fn run(mut self) {
        let mut failures: u32 = 0;
        let mut connected_before = false;
        loop {
            if self.parts.shutdown.is_cancelled() {
                break;
            }
            match self.subscribe().await {
                Ok((sink, stream)) => {
                    failures = 0;
                    self.parts.subscribed.send_replace(true);
                    tracing::info!("redis fan-out listener subscribed");
                    if connected_before {
                        self.recover().await;
                    }
                    connected_before = true;
                    let stopped = self.pump(sink, stream).await;
                    self.parts.subscribed.send_replace(false);
                    if matches!(stopped, Stopped::Shutdown) {
                        break;
                    }
                    tracing::warn!("redis fan-out listener lost its connection; reconnecting");
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "redis fan-out listener cannot subscribe");
                }
            }
            let delay = backoff(failures, self.parts.max_backoff);
            tokio::select! {
                _ = self.parts.shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        self.parts.subscribed.send_replace(false);
        if let Some(recovery) = self.unseen_recovery.take() {
            recovery.abort();
        }
    }

    async fn subscribe(&mut self) -> Result<(PubSubSink, PubSubStream), RedisBackendError> {
        let clients = &self.parts.clients;
        let Some(client) = clients.get(self.attempts % clients.len().max(1)) else {
            return Err(RedisBackendError::Config("no redis node to subscribe to".into()));
        };
        self.attempts = self.attempts.wrapping_add(1);
        let connect = client.get_async_pubsub();
        let pubsub = tokio::time::timeout(self.parts.connect_timeout, connect)
            .await
            .map_err(|_| RedisBackendError::Unavailable("subscribing timed out".into()))??;
        let (mut sink, stream) = pubsub.split();
        let channel = self.parts.keys.channel();
        tokio::time::timeout(self.parts.connect_timeout, sink.subscribe(channel))
            .await
            .map_err(|_| RedisBackendError::Unavailable("subscribing timed out".into()))??;
        Ok((sink, stream))
    }

    /// Feeds the hub until the connection is lost (stream end or an unanswered ping) or shutdown.
    async fn pump(&mut self, mut sink: PubSubSink, mut stream: PubSubStream) -> Stopped {
        let mut ping = tokio::time::interval(self.parts.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = self.parts.shutdown.cancelled() => return Stopped::Shutdown,
                message = stream.next() => match message {
                    Some(message) => self.deliver_payload(message.get_payload_bytes()),
                    None => return Stopped::Lost,
                },
                _ = ping.tick() => {
                    let answered = tokio::time::timeout(self.parts.ping_interval, sink.ping::<Value>()).await;
                    if !matches!(answered, Ok(Ok(_))) {
                        return Stopped::Lost;
                    }
                    let hub = &self.hub;
                    self.seen.retain(|topic, _| hub.subscriber_count(topic) > 0);
                }
            }
        }
    }

    fn deliver_payload(&mut self, payload: &[u8]) {
        let hub = self.hub.clone();
        let (received, now_ms) = (Instant::now(), now_ms());
        let wanted = |topic: &str| hub.subscriber_count(topic) > 0;
        let entries = decode_batch(payload, wanted, received, now_ms);
        for entry in &entries.entries {
            self.deliver(entry);
        }
        if entries.malformed {
            tracing::warn!(
                bytes = payload.len(),
                "undecodable redis fan-out message: the rest of it was dropped"
            );
        }
    }

    fn deliver(&mut self, entry: &Arc<Entry>) {
        let stats = self.hub.deliver(entry);
        if stats.queued + stats.cut_off == 0 {
            return;
        }
        match self.seen.get_mut(&*entry.topic) {
            Some(position) => *position = entry.position,
            None => {
                self.seen.insert(entry.topic.clone(), entry.position);
            }
        }
    }

    /// After a reconnect: what history holds after the last position delivered of each topic still subscribed.
    async fn recover(&mut self) {
        let topics: Vec<(Arc<str>, Position)> = self
            .seen
            .iter()
            .filter(|(topic, _)| self.hub.subscriber_count(topic) > 0)
            .map(|(topic, position)| (topic.clone(), *position))
            .collect();
        let mut recovered = 0usize;
        for (topic, position) in topics {
            if self.parts.shutdown.is_cancelled() {
                return;
            }
            match self
                .parts
                .history
                .read_after(&topic, position, self.parts.recover_max)
                .await
            {
                Ok(Replay::Messages(entries)) => {
                    recovered += entries.len();
                    for entry in &entries {
                        self.deliver(entry);
                    }
                }
                // History no longer covers what was missed (or has a new epoch): the topic's last message, as for
                // a topic without a position, brings its sessions to the gap now, where they reset; waiting for the
                // next message could leave a quiet topic's clients behind for ever.
                Ok(Replay::Gap(_)) => {
                    self.seen.remove(&topic);
                }
                Err(error) => {
                    tracing::warn!(%error, "redis fan-out recovery stopped");
                    return;
                }
            }
        }
        self.recover_unseen();
        if recovered > 0 {
            tracing::info!(
                recovered,
                "redis fan-out listener re-delivered messages missed while disconnected"
            );
        }
    }

    /// Delivers, in a task of its own beside the pump (a node may serve many quiet per-user topics, and the pump
    /// must go on reading meanwhile), the last message of each topic with local subscribers that
    /// [`Listener::seen`] has no position of. A new recovery replaces one still running.
    fn recover_unseen(&mut self) {
        /// Reads in flight at once.
        const CONCURRENT_READS: usize = 32;
        let unseen: Vec<Arc<str>> = self
            .hub
            .topics()
            .into_iter()
            .filter(|topic| !self.seen.contains_key(topic))
            .collect();
        if let Some(previous) = self.unseen_recovery.take() {
            previous.abort();
        }
        if unseen.is_empty() {
            return;
        }
        let history = self.parts.history.clone();
        let hub = self.hub.clone();
        let shutdown = self.parts.shutdown.clone();
        self.unseen_recovery = Some(tokio::spawn(async move {
            let mut reads = futures::stream::iter(unseen)
                .map(|topic| {
                    let history = history.clone();
                    async move { history.last(&topic, 1).await }
                })
                .buffer_unordered(CONCURRENT_READS);
            let mut recovered = 0usize;
            while let Some(read) = reads.next().await {
                if shutdown.is_cancelled() {
                    return;
                }
                match read {
                    Ok(entries) => {
                        recovered += entries.len();
                        for entry in &entries {
                            hub.deliver(entry);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "redis fan-out recovery of quiet topics stopped");
                        return;
                    }
                }
            }
            if recovered > 0 {
                tracing::info!(
                    recovered,
                    "redis fan-out listener re-delivered the last message of topics it held no position of"
                );
            }
        }));
    }
}

/// Exponential backoff with jitter: 50 ms doubling per failure, at most `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(50).saturating_mul(1u32 << failures.min(10));
    let capped = base.min(max);
    let jitter = rand::random::<f64>() * 0.5 + 0.5;
    capped.mul_f64(jitter)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The entries of one fan-out message that a node wants, and whether the message broke off undecodable.
pub(crate) struct Batch {
    pub entries: Vec<Arc<Entry>>,
    pub malformed: bool,
}

/// Decodes a fan-out message, entries `<epoch> <offset> <time ms> <JSON length> <topic>\n<json>` back to back (as
/// the append script publishes them), keeping those of the topics `wanted` says yes to (the others are skipped
/// without a copy). `received` and `now_ms` are one moment on the monotonic and on the wall clock.
pub(crate) fn decode_batch(
    payload: &[u8],
    wanted: impl Fn(&str) -> bool,
    received: Instant,
    now_ms: u64,
) -> Batch {
    let mut entries = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let Some((header, after)) = split_header(rest) else {
            return Batch {
                entries,
                malformed: true,
            };
        };
        let json = &after[..header.length];
        rest = &after[header.length..];
        if wanted(header.topic) {
            entries.push(Arc::new(Entry {
                topic: Arc::from(header.topic),
                position: header.position,
                json: Bytes::copy_from_slice(json),
                published_at: instant_of(received, now_ms, header.time_ms),
            }));
        }
    }
    Batch {
        entries,
        malformed: false,
    }
}

struct Header<'a> {
    position: Position,
    time_ms: u64,
    length: usize,
    topic: &'a str,
}

/// One entry's header line and what follows it; `None` when the header is malformed or the JSON is cut short.
fn split_header(payload: &[u8]) -> Option<(Header<'_>, &[u8])> {
    let newline = payload.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&payload[..newline]).ok()?;
    let mut fields = header.splitn(5, ' ');
    let epoch: u64 = fields.next()?.parse().ok()?;
    let offset: u64 = fields.next()?.parse().ok()?;
    let time_ms: u64 = fields.next()?.parse().ok()?;
    let length: usize = fields.next()?.parse().ok()?;
    let topic = fields.next().filter(|topic| !topic.is_empty())?;
    let after = &payload[newline + 1..];
    if after.len() < length {
        return None;
    }
    let header = Header {
        position: Position { epoch, offset },
        time_ms,
        length,
        topic,
    };
    Some((header, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(payload: &[u8]) -> Batch {
        decode_batch(
            payload,
            |topic| topic != "skipped",
            Instant::now(),
            1_700_000_000_000,
        )
    }

    #[test]
    fn batches_decode_in_order_and_unwanted_topics_are_skipped() {
        let batch = decode(
            b"42 7 1700000000000 7 user.u1.social\n{\"a\":1}42 3 1700000000000 2 skipped\n{}9 1 1700000000001 12 a b\n{\"x\":\"y\\nz\"}",
        );
        assert!(!batch.malformed);
        let got: Vec<(&str, Position, &[u8])> = batch
            .entries
            .iter()
            .map(|entry| (&*entry.topic, entry.position, &entry.json[..]))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "user.u1.social",
                    Position { epoch: 42, offset: 7 },
                    &b"{\"a\":1}"[..]
                ),
                ("a b", Position { epoch: 9, offset: 1 }, &b"{\"x\":\"y\\nz\"}"[..]),
            ]
        );
    }

    #[test]
    fn garbage_keeps_what_came_before_it() {
        let good = b"42 7 1700000000000 2 t\n{}".to_vec();
        for bad in [
            &b"42 7 x 2 t\n{}"[..],
            b"42 7 1 2\n{}",
            b"no newline",
            b"42 7 1 9 t\n{}",
            b"1 2 3 -1 t\n",
        ] {
            let batch = decode(&[good.as_slice(), bad].concat());
            assert!(batch.malformed, "{}", String::from_utf8_lossy(bad));
            assert_eq!(batch.entries.len(), 1);
        }
        assert!(!decode(b"").malformed);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let max = Duration::from_secs(2);
        assert!(backoff(0, max) <= Duration::from_millis(50));
        assert!(backoff(20, max) <= max);
        assert!(backoff(20, max) >= max / 2);
    }
}
