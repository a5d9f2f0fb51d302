//! The writer task: takes the coalesced buffer every flush interval (at once when a `flush` waits or the buffer
//! fills), writes each topic with one call of the fenced script, pipelined, and gives back what failed for a retry
//! with backoff. It also pings Redis while idle, so readiness follows an outage even with nothing to write.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use social_delivery::redis::RedisConnection;
use social_delivery::redis::connection::run_script;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::breaker::{Breaker, BreakerState};
use crate::buffer::{PendingTopic, Taken};
use crate::connection::Connector;
use crate::keys::StateKeys;
use crate::plan::plan;
use crate::script::FENCED_WRITE_SCRIPT;
use crate::sink::Shared;
use crate::{RedisStateConfig, StateError, metrics as m};

pub(crate) struct Writer {
    config: RedisStateConfig,
    keys: StateKeys,
    connector: Connector,
    conn: Option<RedisConnection>,
    shared: Arc<Shared>,
    breaker: Breaker,
    connected_once: bool,
    last_flush: Instant,
    last_ok: Instant,
}

/// What a write of one taken batch did.
struct Written {
    /// Topics to retry (a retryable failure).
    failed: Vec<(String, PendingTopic)>,
    /// The first retryable failure, when any.
    error: Option<StateError>,
}

impl Writer {
    pub(crate) fn new(
        config: RedisStateConfig,
        keys: StateKeys,
        connector: Connector,
        shared: Arc<Shared>,
    ) -> Writer {
        let breaker = Breaker::new(
            config.breaker_failure_threshold,
            Duration::from_millis(config.retry_initial_delay_ms),
            Duration::from_millis(config.retry_max_delay_ms),
        );
        let now = Instant::now();
        Writer {
            config,
            keys,
            connector,
            conn: None,
            shared,
            breaker,
            connected_once: false,
            last_flush: now,
            last_ok: now,
        }
    }

    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let next = self.next_attempt();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep_until(next) => {}
            }
            let now = Instant::now();
            if !self.breaker.may_attempt(now) {
                continue;
            }
            let (pending, urgent) = {
                let buffer = self.shared.buffer();
                (buffer.has_pending(), self.shared.urgent(&buffer))
            };
            if pending
                && (urgent
                    || self.breaker.failures() > 0
                    || now >= self.last_flush + self.config.flush_interval())
            {
                self.flush_once().await;
            } else if !pending
                && (!self.connected_once || now >= self.last_ok + self.config.health_check_interval())
            {
                self.ping().await;
            }
        }
        self.drain().await;
        self.shared.progress.send_modify(|p| p.closed = true);
        tracing::debug!("live-state writer stopped");
    }

    /// When the loop should look again without being woken.
    fn next_attempt(&self) -> Instant {
        if let Some(at) = self.breaker.retry_at() {
            return at;
        }
        if self.shared.buffer().has_pending() {
            return self.last_flush + self.config.flush_interval();
        }
        if !self.connected_once {
            return Instant::now();
        }
        self.last_ok + self.config.health_check_interval()
    }

    /// After shutdown: keeps writing (with backoff) until the buffer is empty or the timeout passes.
    async fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(self.config.shutdown_flush_timeout_ms);
        while self.shared.buffer().has_pending() {
            let at = self.breaker.retry_at().unwrap_or_else(Instant::now);
            if at >= deadline {
                break;
            }
            tokio::time::sleep_until(at).await;
            if tokio::time::timeout_at(deadline, self.flush_once())
                .await
                .is_err()
            {
                break;
            }
        }
        let left = self.shared.buffer().buffered_keys();
        if left > 0 {
            // Not lost: the checkpoint covering them was not committed (flush never returned), so a restart
            // replays them.
            tracing::warn!(keys = left, "live state not written at shutdown");
        }
    }

    async fn ping(&mut self) {
        let result = match self.connection().await {
            Ok(mut conn) => redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(StateError::from),
            Err(error) => Err(error),
        };
        self.record(result.err());
    }

    /// Takes the buffer, writes it, gives back what failed.
    async fn flush_once(&mut self) {
        let started = Instant::now();
        self.last_flush = started;
        let taken = self.shared.buffer().take();
        let upto = taken.upto;
        let written = self.write(taken).await;
        let ok = written.failed.is_empty();
        {
            let mut buffer = self.shared.buffer();
            buffer.settle(written.failed);
            metrics::gauge!(m::BUFFERED_KEYS).set(buffer.buffered_keys() as f64);
        }
        self.shared.progress.send_modify(|p| {
            p.generation += 1;
            if ok {
                p.written = p.written.max(upto);
            }
        });
        metrics::histogram!(m::FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(m::FLUSHES, "result" => if ok { "ok" } else { "error" }).increment(1);
        self.record(written.error);
    }

    /// Updates the breaker, readiness and metrics after an attempt.
    fn record(&mut self, error: Option<StateError>) {
        let now = Instant::now();
        match error {
            None => {
                if !self.breaker.is_closed() {
                    tracing::info!("redis is reachable again; live state catching up");
                }
                self.breaker.success();
                self.connected_once = true;
                self.last_ok = now;
            }
            Some(error) => {
                let delay = self.breaker.failure(now);
                metrics::counter!(m::RETRIES).increment(1);
                tracing::warn!(%error, failures = self.breaker.failures(), retry_in_ms = delay.as_millis() as u64,
                    "live-state write to redis failed");
            }
        }
        let state = self.breaker.state(now);
        let healthy = self.connected_once && state == BreakerState::Closed;
        self.shared.healthy.store(healthy, Ordering::Release);
        self.shared.breaker.store(state.gauge() as u8, Ordering::Release);
        metrics::gauge!(m::BREAKER_STATE).set(state.gauge());
    }

    async fn connection(&mut self) -> Result<RedisConnection, StateError> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        let conn = self.connector.connect().await?;
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    /// Writes every taken topic, `max_topics_per_pipeline` per round trip.
    async fn write(&mut self, taken: Taken) -> Written {
        let mut written = Written {
            failed: Vec::new(),
            error: None,
        };
        let mut topics = taken.topics.into_iter();
        loop {
            let chunk: Vec<(String, PendingTopic)> = topics
                .by_ref()
                .take(self.config.max_topics_per_pipeline)
                .collect();
            if chunk.is_empty() {
                return written;
            }
            if written.error.is_some() {
                // Redis failed on an earlier chunk: do not hammer it, retry everything later.
                written.failed.extend(chunk);
                continue;
            }
            self.write_chunk(chunk, &mut written).await;
        }
    }

    async fn write_chunk(&mut self, chunk: Vec<(String, PendingTopic)>, written: &mut Written) {
        let conn = match self.connection().await {
            Ok(conn) => conn,
            Err(error) => {
                written.error = Some(error);
                written.failed.extend(chunk);
                return;
            }
        };
        let replies = match self.call_chunk(&chunk, &conn).await {
            Ok(replies) => replies,
            Err(error) => {
                written.error = Some(error);
                written.failed.extend(chunk);
                return;
            }
        };
        for ((topic, pending), reply) in chunk.into_iter().zip(replies) {
            match reply {
                Ok(redis::Value::Int(1)) => {
                    metrics::counter!(m::TOPIC_WRITES, "result" => "applied").increment(1);
                }
                Ok(redis::Value::Int(0)) => {
                    metrics::counter!(m::TOPIC_WRITES, "result" => "fenced").increment(1);
                    tracing::debug!(topic, version = %pending.version, "stale live-state write fenced");
                }
                Ok(other) => {
                    metrics::counter!(m::TOPIC_WRITES, "result" => "dropped").increment(1);
                    tracing::error!(topic, reply = ?other, "unexpected reply of the live-state script");
                }
                Err(error) => {
                    let error = StateError::from(error);
                    if error.is_retryable() {
                        written.failed.push((topic, pending));
                        written.error.get_or_insert(error);
                    } else {
                        // It can never succeed (say, a foreign key of another type under our prefix): dropped
                        // loudly rather than blocking every other topic forever.
                        metrics::counter!(m::TOPIC_WRITES, "result" => "dropped").increment(1);
                        tracing::error!(topic, %error, "live-state write refused by redis; dropped");
                    }
                }
            }
        }
    }

    /// The fenced script's call that writes `pending` to `topic`.
    fn invocation(&self, topic: &str, pending: &PendingTopic) -> redis::ScriptInvocation<'static> {
        let call = plan(&self.keys, topic, pending.version, &pending.parts);
        let mut invocation = FENCED_WRITE_SCRIPT.prepare_invoke();
        for key in &call.keys {
            invocation.key(key);
        }
        for arg in &call.args {
            invocation.arg(arg);
        }
        invocation
    }

    /// Runs the fenced script for every topic of `chunk`: one pipeline on a single server; on a cluster, where a
    /// pipeline may not cross slots, one call per topic, all at once. One reply per topic, in order; `Err` when a
    /// whole pipeline failed (then every topic is retried: the fence makes a repeated write harmless).
    async fn call_chunk(
        &self,
        chunk: &[(String, PendingTopic)],
        conn: &RedisConnection,
    ) -> Result<Vec<redis::RedisResult<redis::Value>>, StateError> {
        if conn.is_cluster() {
            // One call per topic (a pipeline may not cross slots): `EVALSHA`, loading the script on that node only
            // when it does not know it, rather than sending the whole script with every topic.
            let calls = chunk.iter().map(|(topic, pending)| {
                let invocation = self.invocation(topic, pending);
                let mut conn = conn.clone();
                async move { run_script::<redis::Value>(&mut conn, &FENCED_WRITE_SCRIPT, &invocation).await }
            });
            return Ok(futures::future::join_all(calls).await);
        }
        let groups = conn.groups(chunk, |(topic, _)| topic.as_str());
        let calls = groups.iter().map(|group| {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            // Loaded in every pipeline: a restarted Redis has an empty script cache, and loading is cheap.
            pipe.load_script(&FENCED_WRITE_SCRIPT);
            for (topic, pending) in group.iter().filter_map(|&index| chunk.get(index)) {
                pipe.invoke_script(&self.invocation(topic, pending));
            }
            let mut conn = conn.clone();
            let expected = group.len() + 1;
            async move {
                let replies: Vec<redis::RedisResult<redis::Value>> =
                    pipe.query_async(&mut conn).await.map_err(StateError::from)?;
                if replies.len() != expected {
                    return Err(StateError::Protocol(format!(
                        "{} replies to a pipeline of {expected}",
                        replies.len()
                    )));
                }
                // The first reply is the script load's.
                Ok(replies.into_iter().skip(1))
            }
        });
        let mut replies: Vec<Option<redis::RedisResult<redis::Value>>> =
            (0..chunk.len()).map(|_| None).collect();
        for (group, result) in groups.iter().zip(futures::future::join_all(calls).await) {
            for (&index, reply) in group.iter().zip(result?) {
                if let Some(slot) = replies.get_mut(index) {
                    *slot = Some(reply);
                }
            }
        }
        replies
            .into_iter()
            .map(|reply| reply.ok_or_else(|| StateError::Protocol("a topic got no reply".into())))
            .collect()
    }
}
