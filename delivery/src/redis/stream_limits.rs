//! [`RedisStreamLimits`]: the concurrent streams and new streams per minute of each user (and of each anonymous
//! client address), counted across every node. `S` below is what a stream is counted under: `user:<id>` or
//! `addr:<address>`.
//!
//! - Concurrent streams: a sorted set per `S` (`P streams:{S}`), one member per open stream (a lease id of
//!   the node that holds it), scored by the lease's expiry (Redis time). Admission drops expired leases, compares
//!   the count with the limit and adds the new lease, in one script. The node renews its leases every third of the
//!   lease time and removes a lease when its stream ends, so a node that dies without removing its leases frees its
//!   slots at the latest one lease time later. Removals go through one task per node (batched, a `ZREM` per
//!   `S`), which at shutdown waits a moment for the streams to end and then removes every lease left, so a
//!   restarting node gives its slots back at once.
//! - New streams per minute: a counter per `S` and Unix minute (`P opened:{S}:M`, same hash tag), expiring
//!   after two minutes.
//!
//! Both keys of an `S` share one hash slot. The renewal call carries the leases of many `S` (as the history
//! append does); on Redis Cluster it is split into one call per leases set.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::connection::{RedisConnection, is_unavailable, run_script};
use async_trait::async_trait;
use redis::Script;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backend_error;
use super::keys::Keys;
use crate::DeliveryError;
use crate::limits::CONCURRENT_RETRY_AFTER_SECS;
use crate::stream_limits::{StreamBounds, StreamLease, StreamLimitStore};

/// KEYS: the leases of an `S`, its counter of this minute. ARGV: concurrent limit, per-minute limit, lease ms,
/// lease id (limits: 0 is none). Returns 0 (admitted), 1 (too many open) or 2 (too many this minute).
const ACQUIRE: &str = r#"
local concurrent, per_minute, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now
if concurrent > 0 then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= concurrent then return 1 end
end
if per_minute > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= per_minute then return 2 end
if concurrent > 0 then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], lease)
end
if per_minute > 0 then
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], 120)
end
return 0
"#;

/// KEYS: the user's ticket counter of this minute. ARGV: the per-minute limit (> 0). Returns 0 (counted) or 1
/// (refused, nothing counted).
const ADMIT_TICKET: &str = r#"
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return 1 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 120)
return 0
"#;

/// KEYS: the leases set of each lease. ARGV: lease ms, then each lease id. Moves the expiry of every lease still
/// there to one lease time from now. `XX`: a lease removed since (its stream ended while the renewal was on its way)
/// is not added back; one that expired because renewals failed for a whole lease time stays uncounted until its
/// stream ends (the count errs towards admitting).
const RENEW: &str = r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 1, #KEYS do
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', now + lease, ARGV[i + 1]) > 0 then
    redis.call('PEXPIRE', KEYS[i], lease)
  end
end
return #KEYS
"#;

static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE));
static ADMIT_TICKET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT_TICKET));
static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));

/// Leases renewed per script call.
const RENEW_CHUNK: usize = 256;
/// At shutdown, how long the lease keeper waits for the streams to end before it removes the leases left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The lease map; a panic elsewhere while holding it cannot leave it half-updated (every use is one insert,
/// remove, copy or drain), so a poisoned lock is used as is.
fn held_leases(inner: &Inner) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
    inner
        .leases
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Per-user and per-address stream limits in Redis, shared by every node with the same key prefix.
pub struct RedisStreamLimits {
    inner: Arc<Inner>,
}

struct Inner {
    conn: RedisConnection,
    keys: Arc<Keys>,
    /// Distinguishes this node's lease ids from other nodes'.
    node: String,
    next_lease: AtomicU64,
    lease: Duration,
    /// This node's open leases: lease id -> the leases set it is in.
    leases: Mutex<HashMap<String, String>>,
    /// Leases to remove from Redis: `(leases set, lease id)`. Unbounded, but never holds more than the leases
    /// this node admitted (one per open stream, within the process limit).
    released: mpsc::UnboundedSender<(String, String)>,
}

impl RedisStreamLimits {
    /// Starts this node's lease keeper (renewals and removals) on `tasks`; it ends after `shutdown`.
    pub(crate) fn start(
        conn: RedisConnection,
        keys: Arc<Keys>,
        lease: Duration,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> RedisStreamLimits {
        let node: [u8; 8] = rand::random();
        let (released, removals) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            conn,
            keys,
            node: node.iter().map(|b| format!("{b:02x}")).collect(),
            next_lease: AtomicU64::new(0),
            lease: lease.max(Duration::from_secs(1)),
            leases: Mutex::new(HashMap::new()),
            released,
        });
        tasks.spawn(keep_leases(inner.clone(), removals, shutdown));
        RedisStreamLimits { inner }
    }
}

#[async_trait]
impl StreamLimitStore for RedisStreamLimits {
    async fn acquire(&self, counted: &str, bounds: StreamBounds) -> Result<StreamLease, DeliveryError> {
        if bounds.concurrent == 0 && bounds.per_minute == 0 {
            return Ok(StreamLease::none());
        }
        let inner = &self.inner;
        let now_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let key = inner.keys.streams(counted);
        let lease_id = format!(
            "{}:{}",
            inner.node,
            inner.next_lease.fetch_add(1, Ordering::Relaxed)
        );
        // Armed before the call: if the reply is lost (timeout, dropped connection, cancelled request) after the
        // script added the lease, the lease is removed rather than left to expire.
        let mut release = Release {
            inner: inner.clone(),
            key: key.clone(),
            lease_id: lease_id.clone(),
            armed: bounds.concurrent > 0,
        };
        let mut conn = inner.conn.clone();
        let verdict: i64 = run_script(
            &mut conn,
            &ACQUIRE_SCRIPT,
            ACQUIRE_SCRIPT
                .key(&key)
                .key(inner.keys.opened(counted, now_secs / 60))
                .arg(bounds.concurrent)
                .arg(bounds.per_minute)
                .arg(inner.lease.as_millis() as u64)
                .arg(&lease_id),
        )
        .await
        .map_err(backend_error)?;
        if verdict != 0 {
            // Refused: the script added nothing.
            release.armed = false;
        }
        match verdict {
            0 if bounds.concurrent == 0 => Ok(StreamLease::none()),
            0 => {
                held_leases(inner).insert(lease_id, key);
                Ok(StreamLease::new(release))
            }
            1 => Err(DeliveryError::TooManyStreams {
                retry_after_secs: CONCURRENT_RETRY_AFTER_SECS,
            }),
            _ => Err(DeliveryError::RateLimited {
                retry_after_secs: (60 - now_secs % 60).max(1),
            }),
        }
    }

    async fn admit_ticket(&self, user: &str, per_minute: u32) -> Result<(), DeliveryError> {
        if per_minute == 0 {
            return Ok(());
        }
        let now_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let mut conn = self.inner.conn.clone();
        let verdict: i64 = run_script(
            &mut conn,
            &ADMIT_TICKET_SCRIPT,
            ADMIT_TICKET_SCRIPT
                .key(self.inner.keys.tickets(user, now_secs / 60))
                .arg(per_minute),
        )
        .await
        .map_err(backend_error)?;
        if verdict == 0 {
            Ok(())
        } else {
            Err(DeliveryError::TicketRateLimited {
                retry_after_secs: (60 - now_secs % 60).max(1),
            })
        }
    }
}

/// Removes its lease, here and in Redis, when the stream ends (when armed).
struct Release {
    inner: Arc<Inner>,
    key: String,
    lease_id: String,
    armed: bool,
}

impl Drop for Release {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        held_leases(&self.inner).remove(&self.lease_id);
        let lease = (std::mem::take(&mut self.key), std::mem::take(&mut self.lease_id));
        // The keeper has stopped (an admission that finished after shutdown): remove it directly while a runtime
        // is there; without one (process exit) the lease expires by itself.
        if let Err(mpsc::error::SendError((key, lease_id))) = self.inner.released.send(lease)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let inner = self.inner.clone();
            runtime.spawn(async move { remove(&inner, vec![(key, lease_id)]).await });
        }
    }
}

/// This node's lease keeper: removes released leases as they come, renews the held ones every third of the lease
/// time, and at shutdown removes what is left.
async fn keep_leases(
    inner: Arc<Inner>,
    mut removals: mpsc::UnboundedReceiver<(String, String)>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(inner.lease / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => renew(&inner, &shutdown).await,
            Some(first) = removals.recv() => {
                let mut batch = vec![first];
                while let Ok(next) = removals.try_recv() {
                    batch.push(next);
                }
                remove(&inner, batch).await;
            }
        }
    }
    // Shutdown: the streams are ending; give them a moment, then give back every lease still here.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    loop {
        let mut batch = Vec::new();
        while let Ok(next) = removals.try_recv() {
            batch.push(next);
        }
        if !batch.is_empty() {
            remove(&inner, batch).await;
        }
        let held = held_leases(&inner).len();
        if held == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left: Vec<(String, String)> = held_leases(&inner).drain().map(|(id, key)| (key, id)).collect();
    if !left.is_empty() {
        remove(&inner, left).await;
    }
}

/// Removes `(leases set, lease id)` pairs: one `ZREM` per set, in one round trip (on a cluster one per set, as a
/// pipeline may not cross slots, all at once).
async fn remove(inner: &Inner, batch: Vec<(String, String)>) {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for (key, lease_id) in batch {
        by_key.entry(key).or_default().push(lease_id);
    }
    let sets: Vec<(String, Vec<String>)> = by_key.into_iter().collect();
    let groups = inner.conn.groups(&sets, |(key, _)| key.as_str());
    let calls = groups.iter().map(|group| {
        let mut pipe = redis::pipe();
        for (key, lease_ids) in group.iter().filter_map(|&index| sets.get(index)) {
            pipe.cmd("ZREM").arg(key).arg(lease_ids).ignore();
        }
        let mut conn = inner.conn.clone();
        async move { pipe.query_async::<()>(&mut conn).await }
    });
    let failed = futures::future::join_all(calls)
        .await
        .into_iter()
        .find_map(Result::err);
    if let Some(error) = failed {
        tracing::warn!(%error, sets = sets.len(), "stream leases could not be removed; they expire by themselves");
    }
}

/// Renews every lease this node holds. Stops at shutdown, and at the first chunk Redis could not be reached for
/// (the others would each wait out the response timeout too; the next round tries again).
async fn renew(inner: &Inner, shutdown: &CancellationToken) {
    let held: Vec<(String, String)> = held_leases(inner)
        .iter()
        .map(|(id, key)| (key.clone(), id.clone()))
        .collect();
    for chunk in held.chunks(RENEW_CHUNK) {
        if shutdown.is_cancelled() {
            return;
        }
        // One call per chunk on a server; on a cluster one per leases set (a script may not cross slots).
        let groups = inner.conn.groups(chunk, |(key, _)| key.as_str());
        let calls = groups.iter().map(|group| {
            let mut call = RENEW_SCRIPT.prepare_invoke();
            call.arg(inner.lease.as_millis() as u64);
            for (key, lease_id) in group.iter().filter_map(|&index| chunk.get(index)) {
                call.key(key).arg(lease_id);
            }
            let mut conn = inner.conn.clone();
            async move { run_script::<i64>(&mut conn, &RENEW_SCRIPT, &call).await }
        });
        let results = futures::future::join_all(calls).await;
        if let Some(error) = results.into_iter().find_map(Result::err) {
            tracing::warn!(%error, leases = chunk.len(), "renewing stream leases failed; retried next round");
            if is_unavailable(&error) {
                return;
            }
        }
    }
}
