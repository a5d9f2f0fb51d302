//! [`HealingCluster`]: a Redis Cluster connection that is rebuilt from the seeds when it stops answering.
//!
//! The `redis` crate's cluster connection repairs a lost node connection in the background, but after a master
//! restarts on the same address it can keep failing every command for that node's slots (they time out). Here a
//! command that fails as unavailable (an I/O error, a timeout, a refused or dropped connection) starts one rebuild
//! in the background, at most one per [`REBUILD_INTERVAL`]: a new connection from the seeds (fresh slot map, fresh
//! node connections) replaces the old one once it connects. Commands in flight keep the connection they started
//! on; the failed command is not sent again (callers retry, as with one server).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use super::connection::is_unavailable;

/// Least time between two rebuilds.
const REBUILD_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct HealingCluster {
    shared: Arc<Shared>,
}

struct Shared {
    client: ClusterClient,
    connect_budget: Duration,
    current: RwLock<ClusterConnection>,
    rebuilding: AtomicBool,
    last_rebuild: Mutex<Option<Instant>>,
}

impl HealingCluster {
    pub(crate) fn new(client: ClusterClient, first: ClusterConnection, connect_budget: Duration) -> Self {
        HealingCluster {
            shared: Arc::new(Shared {
                client,
                connect_budget,
                current: RwLock::new(first),
                rebuilding: AtomicBool::new(false),
                last_rebuild: Mutex::new(None),
            }),
        }
    }

    fn current(&self) -> Option<ClusterConnection> {
        self.shared.current.read().ok().map(|conn| conn.clone())
    }

    /// After a failure: starts a rebuild unless one runs or the last began less than [`REBUILD_INTERVAL`] ago.
    fn after(&self, error: &RedisError) {
        if !is_unavailable(error) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        {
            let Ok(mut last) = self.shared.last_rebuild.lock() else {
                return;
            };
            if last.is_some_and(|at| at.elapsed() < REBUILD_INTERVAL) {
                return;
            }
            if self.shared.rebuilding.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            // Cleared however the task ends (a panic included), so a later failure can rebuild again.
            let _clear = ClearOnDrop(&shared.rebuilding);
            let connect = shared.client.get_async_connection();
            match tokio::time::timeout(shared.connect_budget, connect).await {
                Ok(Ok(conn)) => {
                    if let Ok(mut current) = shared.current.write() {
                        *current = conn;
                    }
                    tracing::info!("redis cluster connection rebuilt from the seeds");
                }
                Ok(Err(error)) => tracing::warn!(%error, "rebuilding the redis cluster connection failed"),
                Err(_) => tracing::warn!("rebuilding the redis cluster connection timed out"),
            }
        });
    }
}

struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn closed() -> RedisError {
    RedisError::from(std::io::Error::other("redis cluster connection lock poisoned"))
}

impl ConnectionLike for HealingCluster {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let this = self.clone();
        Box::pin(async move {
            let mut conn = this.current().ok_or_else(closed)?;
            let result = conn.req_packed_command(cmd).await;
            if let Err(error) = &result {
                this.after(error);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let this = self.clone();
        Box::pin(async move {
            let mut conn = this.current().ok_or_else(closed)?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(error) = &result {
                this.after(error);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
