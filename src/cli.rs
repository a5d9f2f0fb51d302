//! Command line: every option also reads an environment variable (CONTRACT section 1).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use social_delivery::{DeliveryConfig, ForwardedHeader, IpNetwork};

#[derive(Debug, Parser)]
#[command(
    name = "social-realtime",
    version,
    about = "Real-time tier of the social sharing and referrals platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pipeline and delivery in one process. With no backend configured: in-process bus, in-memory state.
    Run(RunArgs),
    /// The pipeline tier alone: ingest, bus, operators (embedded bus unless a Fluvio endpoint is given).
    Pipeline(ServerArgs),
    /// The delivery tier alone: SSE feeds fed through Redis by a separate pipeline (needs --redis-url).
    Delivery(DeliveryArgs),
    /// Synthetic, reproducible traffic as NDJSON on stdout or posted to an HTTP ingest endpoint.
    Generate(GenerateArgs),
    /// Mint a JWT for development and tests.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Also run the synthetic generator into the system and serve the live demo page.
    #[arg(long, env = "DEMO")]
    pub demo: bool,
    /// Events per second the demo generator produces.
    #[arg(long, env = "DEMO_RATE", default_value_t = 200.0)]
    pub demo_rate: f64,
    /// Seed of the demo generator.
    #[arg(long, env = "DEMO_SEED", default_value_t = 1)]
    pub demo_seed: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed on stdout).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Local state on disk: the operators' checkpoints (`operators/`), and the embedded bus (write-ahead log,
    /// fsync before 202) unless the bus is Fluvio. Everything in memory when absent.
    #[arg(long, env = "DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Fluvio SC endpoint (`host:port`): the bus is this Fluvio cluster instead of the embedded one. Give a
    /// `--data-dir` too, so that the operators' state survives a restart (their checkpoints hold the offsets).
    #[arg(long, env = "FLUVIO_ENDPOINT")]
    pub fluvio_endpoint: Option<String>,
    #[command(flatten)]
    pub fluvio: FluvioArgs,
    /// ClickHouse HTTP URL (e.g. http://127.0.0.1:8123): accepted events and aggregates are written there.
    #[arg(long, env = "CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database (created when missing).
    #[arg(long, env = "CLICKHOUSE_DATABASE", default_value = "social_realtime")]
    pub clickhouse_database: String,
    /// Redis for the delivery history, the fan-out between delivery nodes and tickets, so that separate `delivery`
    /// processes serve this pipeline's messages and clients resume on any node. In memory when absent.
    /// `redis://host:port` for one server, `redis+cluster://host:port,host:port` for a Redis Cluster.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this deployment uses.
    #[arg(long, env = "REDIS_PREFIX", default_value = "social:")]
    pub redis_prefix: String,
    /// Partitions of the input topic, when it is created.
    #[arg(long, env = "INPUT_PARTITIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Largest request body accepted by `POST /v1/events`, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Bytes of `POST /v1/events` bodies held at once, over all requests (each holds its `Content-Length` from its
    /// first byte, or without one `--max-body-bytes`, until its answer; `503 ingest_busy` when there is no room
    /// within a second).
    #[arg(long, env = "MAX_INFLIGHT_BODY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_inflight_body_bytes: usize,
    /// Longest time a request body of `POST /v1/events` may take to arrive, in milliseconds (`408` beyond; 0: no
    /// limit).
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_timeout_ms: u64,
    /// Most events in one `POST /v1/events` request (`413 too_many_events` beyond).
    #[arg(long, env = "MAX_EVENTS_PER_REQUEST", default_value_t = 10_000)]
    pub max_events_per_request: usize,
    /// Largest single event, in bytes.
    #[arg(long, env = "MAX_EVENT_BYTES", default_value_t = 64 * 1024)]
    pub max_event_bytes: usize,
    /// How long `(source, id)` pairs are remembered for deduplication, in seconds.
    #[arg(long, env = "DEDUP_WINDOW_SECS", default_value_t = 3600)]
    pub dedup_window_secs: u64,
    /// At most this many `(source, id)` pairs are remembered.
    #[arg(long, env = "DEDUP_MAX_ENTRIES", default_value_t = 2_000_000)]
    pub dedup_max_entries: usize,
    /// An event whose `time` is more than this far after its arrival is rejected (`timestamp_in_future`), in
    /// milliseconds; the operators dead-letter records other producers wrote with such a time.
    #[arg(long, env = "MAX_FUTURE_MS", default_value_t = 900_000,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub max_future_ms: i64,
    /// Interval between checkpoints of the operators' state and offsets (wall clock), in milliseconds.
    #[arg(long, env = "CHECKPOINT_INTERVAL_MS", default_value_t = 10_000)]
    pub checkpoint_interval_ms: u64,
    /// Threads the operators run on, 1 or 2: with 2, engagement, trending and testimonials run beside the
    /// referral operators on a second thread (the output is the same).
    #[arg(long, env = "OPERATOR_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub operator_threads: u8,
    /// At most this many input event keys are kept by the operators to drop copies of an event that reached
    /// the input topic twice (normally every event within the allowed lateness; about 50 bytes each).
    #[arg(long, env = "OPERATOR_DEDUP_MAX_KEYS", default_value_t = 1_000_000)]
    pub operator_dedup_max_keys: usize,
    /// At most this many events wait for the referral code or share they name, read before the event that
    /// creates it (late input); past it such an event counts as naming nothing.
    #[arg(long, env = "OPERATOR_MAX_WAITING_EVENTS", default_value_t = 100_000)]
    pub operator_max_waiting_events: usize,
    /// Release buffered events when every input partition has been quiet this long, in milliseconds; 0 waits
    /// for newer events instead (fully deterministic output).
    #[arg(long, env = "IDLE_FLUSH_MS", default_value_t = 2_000)]
    pub idle_flush_ms: u64,
    #[command(flatten)]
    pub streams: StreamArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// How the bus names and creates its Fluvio topics (with `--fluvio-endpoint`).
#[derive(Debug, Clone, Args)]
pub struct FluvioArgs {
    /// Prepended to the name of every Fluvio topic the bus uses (`staging-` gives `staging-social-events`),
    /// so that several deployments can share one cluster: lowercase letters, digits and dashes, not starting
    /// with a dash, at most 38 characters (Fluvio names have at most 63).
    #[arg(long = "fluvio-topic-prefix", env = "FLUVIO_TOPIC_PREFIX", default_value = "",
          value_parser = parse_topic_prefix)]
    pub topic_prefix: String,
    /// Time retention of the Fluvio topics the bus creates, in seconds (topics that exist are left as they are).
    #[arg(long = "fluvio-retention-secs", env = "FLUVIO_RETENTION_SECS", default_value_t = 7 * 24 * 3600)]
    pub retention_secs: u32,
    /// Replication factor of the Fluvio topics the bus creates (at most the cluster's SPU count).
    #[arg(long = "fluvio-replication", env = "FLUVIO_REPLICATION", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub replication: u32,
}

/// The longest topic name the bus uses (`social-events-dead-letter`) plus the prefix must fit Fluvio's 63.
fn parse_topic_prefix(value: &str) -> Result<String, String> {
    const MAX: usize = 38;
    let valid_chars = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_chars || value.starts_with('-') || value.len() > MAX {
        return Err(format!(
            "lowercase letters, digits and dashes, not starting with a dash, at most {MAX} characters"
        ));
    }
    Ok(value.to_string())
}

/// Who may open how many SSE streams, for the processes that serve them.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Comma-separated proxies (CIDR networks or addresses, e.g. `10.0.0.0/8,192.168.0.0/16`) whose forwarding
    /// header (`--forwarded-header`) names the client address; from any other peer the header is ignored.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNetwork>,
    /// The header the trusted proxies write, `x-forwarded-for` or `forwarded` (RFC 7239); only that one is read.
    #[arg(long, env = "FORWARDED_HEADER", default_value = "x-forwarded-for")]
    pub forwarded_header: ForwardedHeader,
    /// Concurrent streams without a token from one client address (an IPv6 /64); 0: no limit.
    #[arg(long, env = "MAX_ANONYMOUS_STREAMS_PER_ADDRESS", default_value_t = 1_000)]
    pub max_anonymous_streams_per_address: u32,
    /// New streams without a token one client address may open per minute; 0: no limit.
    #[arg(
        long,
        env = "MAX_NEW_ANONYMOUS_STREAMS_PER_ADDRESS_PER_MINUTE",
        default_value_t = 1_000
    )]
    pub max_new_anonymous_streams_per_address_per_minute: u32,
    /// Seconds between heartbeat comments on a stream (1 to 3600).
    #[arg(long, env = "HEARTBEAT_SECS", default_value_t = DeliveryConfig::default().heartbeat_secs,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub heartbeat_secs: u64,
    /// Base of the `retry:` hint sent to EventSource clients, in milliseconds (at most an hour).
    #[arg(long, env = "RETRY_BASE_MS", default_value_t = DeliveryConfig::default().retry_base_ms,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub retry_base_ms: u64,
    /// Random jitter added to the `retry:` hint per connection (0 up to this), in milliseconds (at most an hour).
    #[arg(long, env = "RETRY_JITTER_MS", default_value_t = DeliveryConfig::default().retry_jitter_ms,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub retry_jitter_ms: u64,
    /// Topics one stream or poll may name (at most 255).
    #[arg(long, env = "MAX_TOPICS_PER_STREAM", default_value_t = DeliveryConfig::default().max_topics_per_stream,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=255))]
    pub max_topics_per_stream: usize,
    /// Concurrent streams and long polls of one user; 0: no limit.
    #[arg(long, env = "MAX_STREAMS_PER_USER", default_value_t = DeliveryConfig::default().max_streams_per_user)]
    pub max_streams_per_user: u32,
    /// New streams and polls one user may open per minute, and tickets one user may take per minute; 0: no limit.
    #[arg(
        long,
        env = "MAX_NEW_STREAMS_PER_USER_PER_MINUTE",
        default_value_t = DeliveryConfig::default().max_new_streams_per_user_per_minute
    )]
    pub max_new_streams_per_user_per_minute: u32,
    /// Streams this process holds (at least 1); beyond it new streams get `503` with `Retry-After`.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DeliveryConfig::default().max_connections,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// How long each topic's history is kept for resumption, in seconds. With Redis, give the `pipeline` (which
    /// appends and trims) and the `delivery` nodes (which read) the same history settings.
    #[arg(
        long,
        env = "HISTORY_RETENTION_SECS",
        default_value_t = DeliveryConfig::default().history_retention_secs,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub history_retention_secs: u64,
    /// Messages kept per topic for resumption, whatever their age (older ones give `RESET`).
    #[arg(
        long,
        env = "HISTORY_MAX_MESSAGES_PER_TOPIC",
        default_value_t = DeliveryConfig::default().history_max_messages_per_topic,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub history_max_messages_per_topic: usize,
    /// Bytes of messages kept per topic in the in-process history (Redis keeps the count and age limits only).
    #[arg(
        long,
        env = "HISTORY_MAX_BYTES_PER_TOPIC",
        default_value_t = DeliveryConfig::default().history_max_bytes_per_topic,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub history_max_bytes_per_topic: usize,
    /// Memory the in-process history's messages may take across all topics (JSON, topic name and about 120 bytes
    /// each); past it the oldest messages of every topic go first (a client behind them gets `RESET`).
    #[arg(
        long,
        env = "HISTORY_MAX_TOTAL_BYTES",
        default_value_t = DeliveryConfig::default().history_max_total_bytes,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub history_max_total_bytes: usize,
}

impl StreamArgs {
    /// `config` with these limits.
    pub fn apply(&self, config: DeliveryConfig) -> DeliveryConfig {
        DeliveryConfig {
            heartbeat_secs: self.heartbeat_secs,
            retry_base_ms: self.retry_base_ms,
            retry_jitter_ms: self.retry_jitter_ms,
            max_topics_per_stream: self.max_topics_per_stream,
            max_streams_per_user: self.max_streams_per_user,
            max_new_streams_per_user_per_minute: self.max_new_streams_per_user_per_minute,
            max_connections: self.max_connections,
            history_retention_secs: self.history_retention_secs,
            history_max_messages_per_topic: self.history_max_messages_per_topic,
            history_max_bytes_per_topic: self.history_max_bytes_per_topic,
            history_max_total_bytes: self.history_max_total_bytes,
            trusted_proxies: self.trusted_proxies.clone(),
            forwarded_header: self.forwarded_header,
            max_anonymous_streams_per_address: self.max_anonymous_streams_per_address,
            max_new_anonymous_streams_per_address_per_minute: self
                .max_new_anonymous_streams_per_address_per_minute,
            ..config
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    #[value(name = "HS256")]
    Hs256,
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES256")]
    Es256,
}

#[derive(Clone, Args)]
pub struct AuthArgs {
    /// JWT signature algorithm; fixed by configuration, never read from the token.
    #[arg(long, env = "JWT_ALGORITHM", value_enum, default_value = "HS256")]
    pub jwt_algorithm: Algorithm,
    /// Shared secret for HS256.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file with the public key for RS256 or ES256.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM file with the private key for RS256 or ES256 (only `token` uses it).
    #[arg(long, env = "JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,
    /// Required `iss` claim, when set.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,
}

impl std::fmt::Debug for AuthArgs {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthArgs")
            .field("jwt_algorithm", &self.jwt_algorithm)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<redacted>"))
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("jwt_private_key_file", &self.jwt_private_key_file)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_leeway_secs", &self.jwt_leeway_secs)
            .finish()
    }
}

#[derive(Debug, Args)]
pub struct DeliveryArgs {
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Redis holding the delivery history, the fan-out between delivery nodes and the live state.
    /// `redis://host:port` for one server, `redis+cluster://host:port,host:port` for a Redis Cluster.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this deployment uses (the pipeline's `--redis-prefix`).
    #[arg(long, env = "REDIS_PREFIX", default_value = "social:")]
    pub redis_prefix: String,
    /// ClickHouse HTTP URL (e.g. http://127.0.0.1:8123): this node's publish-to-write latency is written there
    /// (`delivery_latency`).
    #[arg(long, env = "CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,
    /// ClickHouse database (the pipeline's `--clickhouse-database`; created when missing).
    #[arg(long, env = "CLICKHOUSE_DATABASE", default_value = "social_realtime")]
    pub clickhouse_database: String,
    #[command(flatten)]
    pub streams: StreamArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Seed: the same seed and options give byte-identical output.
    #[arg(long, env = "GENERATE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Number of events; 0 means without end.
    #[arg(long, env = "GENERATE_COUNT", default_value_t = 10_000)]
    pub count: u64,
    /// Simulated users.
    #[arg(long, env = "GENERATE_USERS", default_value_t = 10_000)]
    pub users: u32,
    /// Events per second sent to the target (0: as fast as the target takes them). Stdout is never paced.
    #[arg(long, env = "GENERATE_RATE", default_value_t = 0.0)]
    pub rate: f64,
    /// Event time of the first event (RFC 3339) or `now`. Defaults to a fixed instant, for reproducible output.
    /// With `now` and a `--rate`, event time advances at that rate: it follows the clock.
    #[arg(long, env = "GENERATE_START_TIME")]
    pub start_time: Option<String>,
    /// Post to this ingest endpoint (e.g. http://127.0.0.1:8080/v1/events) instead of writing to stdout.
    #[arg(long, env = "GENERATE_TARGET")]
    pub target: Option<String>,
    /// Produce to the input topic `social-events` (named with `--fluvio-topic-prefix`) of this Fluvio cluster
    /// (`host:port` of the SC) instead.
    #[arg(long, env = "FLUVIO_ENDPOINT", conflicts_with = "target")]
    pub fluvio_endpoint: Option<String>,
    #[command(flatten)]
    pub fluvio: FluvioArgs,
    /// Partitions of the input topic when `--fluvio-endpoint` has to create it (the pipeline's `--partitions`).
    #[arg(long, env = "INPUT_PARTITIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: u32,
    /// Bearer token with role `service` for the target.
    #[arg(long, env = "SERVICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Events per request to the target.
    #[arg(long, env = "GENERATE_BATCH", default_value_t = 500)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Subject: the user id.
    #[arg(long, env = "TOKEN_SUB")]
    pub sub: String,
    /// Comma-separated program ids the user is a member of.
    #[arg(long, env = "TOKEN_PROGRAMS", value_delimiter = ',', default_value = "")]
    pub programs: Vec<String>,
    /// Comma-separated roles (`service`, `admin`).
    #[arg(long, env = "TOKEN_ROLES", value_delimiter = ',', default_value = "")]
    pub roles: Vec<String>,
    /// Lifetime, in seconds.
    #[arg(long, env = "TOKEN_TTL", default_value_t = 3600)]
    pub ttl: u64,
    /// Use the demo secret that `run --demo` uses when no JWT secret is configured.
    #[arg(long, env = "TOKEN_DEMO")]
    pub demo: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[cfg(feature = "fluvio")]
impl FluvioArgs {
    /// The bus settings for the cluster at `endpoint`: these options over the defaults.
    pub fn bus_config(&self, endpoint: &str) -> social_pipeline::bus::fluvio::FluvioBusConfig {
        social_pipeline::bus::fluvio::FluvioBusConfig {
            topic_prefix: self.topic_prefix.clone(),
            retention_secs: self.retention_secs,
            replication: self.replication,
            ..social_pipeline::bus::fluvio::FluvioBusConfig::new(endpoint)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_topic_prefix;

    #[test]
    fn topic_prefixes_are_fluvio_names() {
        for good in ["", "staging-", "eu1-", "a"] {
            assert_eq!(parse_topic_prefix(good).as_deref(), Ok(good));
        }
        let too_long = "p".repeat(39);
        for bad in ["Staging-", "stag_ing-", "-staging", "dot.", too_long.as_str()] {
            assert!(parse_topic_prefix(bad).is_err(), "{bad:?} accepted");
        }
    }
}
