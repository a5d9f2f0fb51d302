//! One Redis deployment behind one connection type: a single server (`redis://host:port`) or a Redis Cluster
//! (`redis+cluster://host:port,host:port,...`, any reachable nodes as seeds).
//!
//! Every key of one topic (or one user's stream leases) shares a hash tag, so each script call and each pipeline
//! that touches one topic stays in one slot. Work spanning topics is split with [`RedisConnection::groups`]: one
//! group on a single server (one round trip, as before), one group per hash tag on a cluster, where a script or a
//! pipeline may not cross slots; the groups of one call then run concurrently.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;

use super::cluster::HealingCluster;
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, RedisResult, Script, ScriptInvocation,
    ServerErrorKind, Value,
};

/// The scheme of a Redis Cluster address.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Where Redis is, parsed from a URL.
#[derive(Clone)]
pub enum RedisTarget {
    Server(redis::Client),
    /// The seed nodes of a cluster, each as a client of its own (the fan-out listener subscribes through one).
    Cluster {
        seeds: Vec<redis::Client>,
    },
}

impl std::fmt::Debug for RedisTarget {
    /// Never prints the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Server(_) => f.write_str("RedisTarget::Server"),
            RedisTarget::Cluster { seeds } => write!(f, "RedisTarget::Cluster({} seeds)", seeds.len()),
        }
    }
}

/// Timeouts of a connection: a dead node fails operations fast.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
    /// Longest wait between reconnection attempts.
    pub max_delay: Duration,
}

impl RedisTarget {
    /// `redis://[user:password@]host:port[/db]`, or `redis+cluster://[user:password@]host:port[,host:port...]`.
    /// The error never repeats the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<RedisTarget, String> {
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            return redis::Client::open(url)
                .map(RedisTarget::Server)
                .map_err(|error| format!("redis url: {error}"));
        };
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
            None => (String::new(), rest),
        };
        let seeds: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(|host| format!("redis://{userinfo}{host}"))
            .collect();
        if seeds.is_empty() {
            return Err(format!(
                "redis url: {CLUSTER_SCHEME} needs at least one host:port"
            ));
        }
        if hosts.contains('/') {
            return Err("redis url: a cluster has no database number (only db 0)".to_owned());
        }
        if hosts.contains('?') {
            return Err("redis url: a cluster address takes no query options".to_owned());
        }
        let clients = seeds
            .iter()
            .map(|seed| redis::Client::open(seed.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("redis url: {error}"))?;
        // Checks that the seeds agree (one user and password); `connect` builds the client with the timeouts.
        ClusterClient::new(seeds.iter().map(String::as_str))
            .map_err(|error| format!("redis url: {error}"))?;
        Ok(RedisTarget::Cluster { seeds: clients })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster { .. })
    }

    /// A connection whose first connection succeeded (bounded by the timeouts).
    pub async fn connect(&self, timeouts: Timeouts) -> Result<RedisConnection, redis::RedisError> {
        let budget = timeouts
            .connect
            .saturating_mul(3)
            .saturating_add(timeouts.response);
        let timed_out = || redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        match self {
            RedisTarget::Server(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response))
                    .set_number_of_retries(1)
                    .set_max_delay(timeouts.max_delay);
                let connect = ConnectionManager::new_with_config(client.clone(), config);
                let conn = tokio::time::timeout(budget, connect)
                    .await
                    .map_err(|_| timed_out())??;
                Ok(RedisConnection::Server(conn))
            }
            RedisTarget::Cluster { seeds, .. } => {
                let infos = seeds.iter().map(|seed| seed.get_connection_info().clone());
                // No retries: the client would send a command again after a dropped connection even when Redis
                // had run it (a ticket spent twice, a message appended twice), where the single-server manager
                // sends each command once. A redirect (`MOVED`, `ASK`: a slot migrating or failing over) then
                // fails the operation once while the client refreshes its slot map; every caller retries (the
                // pipeline's publisher and live-state writer with backoff, HTTP clients after a `503`).
                let client = ClusterClient::builder(infos)
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.response)
                    .retries(0)
                    .build()?;
                let conn = tokio::time::timeout(budget, client.get_async_connection())
                    .await
                    .map_err(|_| timed_out())??;
                Ok(RedisConnection::Cluster(HealingCluster::new(
                    client, conn, budget,
                )))
            }
        }
    }

    /// Clients for pub/sub, tried in turn (from a random one, so that the delivery nodes spread over a cluster's
    /// seeds): every node of a cluster receives every `PUBLISH` of the cluster.
    pub fn pubsub_clients(&self) -> Vec<redis::Client> {
        match self {
            RedisTarget::Server(client) => vec![client.clone()],
            RedisTarget::Cluster { seeds } => {
                let mut seeds = seeds.clone();
                let first = rand::random_range(0..seeds.len().max(1));
                seeds.rotate_left(first);
                seeds
            }
        }
    }
}

/// A multiplexed connection to a server (reconnecting on the next operation) or to a cluster (following slot
/// moves, and rebuilt from the seeds when it stops answering: see [`HealingCluster`]).
#[derive(Clone)]
pub enum RedisConnection {
    Server(ConnectionManager),
    Cluster(HealingCluster),
}

impl RedisConnection {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConnection::Cluster(_))
    }

    /// Splits `items` into groups that one script call or pipeline may take: all of them on a server, one group
    /// per hash tag on a cluster (first-seen order of tags; items keep their order within a group). Each group
    /// holds the indexes of its items.
    pub fn groups<T>(&self, items: &[T], hash_tag: impl Fn(&T) -> &str) -> Vec<Vec<usize>> {
        group_by_tag(self.is_cluster(), items, hash_tag)
    }
}

/// Whether `error` means Redis could not be reached or did not answer (retryable; on a cluster it also starts a
/// rebuild of the connection): an I/O error, a timeout, a dropped or refused connection, or a cluster client that
/// has no connection for a slot or whose background task failed.
pub fn is_unavailable(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.kind() == ErrorKind::ClusterConnectionNotFound
        || error.is_unrecoverable_error()
}

/// Runs `invocation` of `script` (`EVALSHA`), loading the script first when Redis does not know it (a restarted
/// Redis has an empty script cache). On a cluster the load goes to the node of the call's keys only, in one
/// pipeline with the call: the `redis` crate's own fallback loads the script on every node and fails while any
/// node is down, which would stop the calls of healthy slots too.
pub async fn run_script<T: FromRedisValue>(
    conn: &mut RedisConnection,
    script: &Script,
    invocation: &ScriptInvocation<'_>,
) -> RedisResult<T> {
    if !conn.is_cluster() {
        return invocation.invoke_async(conn).await;
    }
    let mut call = redis::pipe();
    call.invoke_script(invocation);
    match call.query_async::<(T,)>(conn).await {
        Ok((value,)) => Ok(value),
        Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            let mut call = redis::pipe();
            call.load_script(script).ignore().invoke_script(invocation);
            let (value,): (T,) = call.query_async(conn).await?;
            Ok(value)
        }
        Err(error) => Err(error),
    }
}

/// [`RedisConnection::groups`] for a single server (`by_tag` false) or a cluster.
fn group_by_tag<T>(by_tag: bool, items: &[T], hash_tag: impl Fn(&T) -> &str) -> Vec<Vec<usize>> {
    if items.is_empty() {
        return Vec::new();
    }
    if !by_tag {
        return vec![(0..items.len()).collect()];
    }
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let group = *group_of.entry(hash_tag(item)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        if let Some(group) = groups.get_mut(group) {
            group.push(index);
        }
    }
    groups
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Server(conn) => conn.req_packed_command(cmd),
            RedisConnection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Server(conn) => conn.get_db(),
            RedisConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_one_call_on_a_server_and_one_per_tag_on_a_cluster() {
        let topics = ["a", "b", "a", "c", "b", "a"];
        assert_eq!(group_by_tag(false, &topics, |t| t), vec![vec![0, 1, 2, 3, 4, 5]]);
        assert_eq!(
            group_by_tag(true, &topics, |t| t),
            vec![vec![0, 2, 5], vec![1, 4], vec![3]]
        );
        assert!(group_by_tag(true, &[] as &[&str], |t| t).is_empty());
        assert!(group_by_tag(false, &[] as &[&str], |t| t).is_empty());
    }

    #[test]
    fn urls_parse_into_a_server_or_cluster_seeds() {
        assert!(!RedisTarget::parse("redis://127.0.0.1:6379").unwrap().is_cluster());
        let target =
            RedisTarget::parse("redis+cluster://user:secret@127.0.0.1:7001, 127.0.0.1:7002").unwrap();
        assert!(target.is_cluster());
        let seeds = target.pubsub_clients();
        assert_eq!(seeds.len(), 2);
        let info = seeds[1].get_connection_info();
        assert_eq!(info.redis_settings().password(), Some("secret"));
        assert_eq!(info.redis_settings().username(), Some("user"));
        assert!(RedisTarget::parse("redis+cluster://").is_err());
        assert!(RedisTarget::parse("redis+cluster://127.0.0.1:7001/3").is_err());
        let error = RedisTarget::parse("nope://user:hunter2@x").err().unwrap();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(!format!("{target:?}").contains("secret"));
    }
}
