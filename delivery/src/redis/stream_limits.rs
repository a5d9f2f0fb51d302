//! [`RedisStreamLimits`]: each user's concurrent streams and new streams per minute, counted across every node.
//!
//! - Concurrent streams: a sorted set per user (`P streams:{user:U}`), one member per open stream (a lease id of
//!   the node that holds it), scored by the lease's expiry (Redis time). Admission drops expired leases, compares
//!   the count with the limit and adds the new lease, in one script. The node renews its leases every third of the
//!   lease time and removes a lease when its stream ends, so a node that dies without removing its leases frees its
//!   users' slots at the latest one lease time later.
//! - New streams per minute: a counter per user and Unix minute (`P opened:{user:U}:M`, same hash tag), expiring
//!   after two minutes.
//!
//! Both keys of a user share one hash slot. The renewal call carries the leases of many users (as the history
//! append does): on Redis Cluster it would have to be grouped by slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backend_error;
use super::keys::Keys;
use crate::DeliveryError;
use crate::limits::CONCURRENT_RETRY_AFTER_SECS;
use crate::stream_limits::{StreamLease, StreamLimitStore, UserBounds};

/// KEYS: the user's leases, the user's counter of this minute. ARGV: concurrent limit, per-minute limit, lease ms,
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
static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));

/// Leases renewed per script call.
const RENEW_CHUNK: usize = 256;

/// Per-user stream limits in Redis, shared by every node with the same key prefix.
pub struct RedisStreamLimits {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    keys: Arc<Keys>,
    /// Distinguishes this node's lease ids from other nodes'.
    node: String,
    next_lease: AtomicU64,
    lease: Duration,
    /// This node's open leases: lease id -> the user's leases set.
    leases: Mutex<HashMap<String, String>>,
}

impl RedisStreamLimits {
    /// Starts the renewal of this node's leases on `tasks`, until `shutdown`.
    pub(crate) fn start(
        conn: ConnectionManager,
        keys: Arc<Keys>,
        lease: Duration,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> RedisStreamLimits {
        let node: [u8; 8] = rand::random();
        let inner = Arc::new(Inner {
            conn,
            keys,
            node: node.iter().map(|b| format!("{b:02x}")).collect(),
            next_lease: AtomicU64::new(0),
            lease: lease.max(Duration::from_secs(1)),
            leases: Mutex::new(HashMap::new()),
        });
        tasks.spawn(renew_until(inner.clone(), shutdown));
        RedisStreamLimits { inner }
    }

    /// Leases this node holds now.
    pub fn held(&self) -> usize {
        self.inner.leases.lock().map_or(0, |leases| leases.len())
    }
}

#[async_trait]
impl StreamLimitStore for RedisStreamLimits {
    async fn acquire(&self, user: &str, bounds: UserBounds) -> Result<StreamLease, DeliveryError> {
        if bounds.concurrent == 0 && bounds.per_minute == 0 {
            return Ok(StreamLease::none());
        }
        let inner = &self.inner;
        let now_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let key = inner.keys.streams(user);
        let lease_id = format!(
            "{}:{}",
            inner.node,
            inner.next_lease.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = inner.conn.clone();
        let verdict: i64 = ACQUIRE_SCRIPT
            .key(&key)
            .key(inner.keys.opened(user, now_secs / 60))
            .arg(bounds.concurrent)
            .arg(bounds.per_minute)
            .arg(inner.lease.as_millis() as u64)
            .arg(&lease_id)
            .invoke_async(&mut conn)
            .await
            .map_err(backend_error)?;
        match verdict {
            0 if bounds.concurrent == 0 => Ok(StreamLease::none()),
            0 => {
                if let Ok(mut leases) = inner.leases.lock() {
                    leases.insert(lease_id.clone(), key.clone());
                }
                Ok(StreamLease::new(Release {
                    inner: inner.clone(),
                    key,
                    lease_id,
                }))
            }
            1 => Err(DeliveryError::TooManyStreams {
                retry_after_secs: CONCURRENT_RETRY_AFTER_SECS,
            }),
            _ => Err(DeliveryError::RateLimited {
                retry_after_secs: (60 - now_secs % 60).max(1),
            }),
        }
    }
}

/// Removes its lease, here and in Redis, when the stream ends.
struct Release {
    inner: Arc<Inner>,
    key: String,
    lease_id: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Ok(mut leases) = self.inner.leases.lock() {
            leases.remove(&self.lease_id);
        }
        // Without a runtime (process exit) the lease expires by itself.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut conn = self.inner.conn.clone();
        let key = std::mem::take(&mut self.key);
        let lease_id = std::mem::take(&mut self.lease_id);
        runtime.spawn(async move {
            let removed: Result<i64, _> = redis::cmd("ZREM")
                .arg(&key)
                .arg(&lease_id)
                .query_async(&mut conn)
                .await;
            if let Err(error) = removed {
                tracing::warn!(%error, "a stream lease could not be removed; it expires by itself");
            }
        });
    }
}

/// Renews every lease this node holds, every third of the lease time.
async fn renew_until(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(inner.lease / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let held: Vec<(String, String)> = match inner.leases.lock() {
            Ok(leases) => leases.iter().map(|(id, key)| (key.clone(), id.clone())).collect(),
            Err(_) => return,
        };
        for chunk in held.chunks(RENEW_CHUNK) {
            let mut call = RENEW_SCRIPT.prepare_invoke();
            call.arg(inner.lease.as_millis() as u64);
            for (key, lease_id) in chunk {
                call.key(key).arg(lease_id);
            }
            let mut conn = inner.conn.clone();
            let renewed: Result<i64, _> = call.invoke_async(&mut conn).await;
            if let Err(error) = renewed {
                tracing::warn!(%error, leases = chunk.len(), "renewing stream leases failed; retried next round");
                break;
            }
        }
    }
}
