//! The delivery tier: Server-Sent Events feeds with exact resumption, polling, snapshots, tickets, limits and the
//! live demo page (CONTRACT sections 3, 4 and 5).
//!
//! Map of the crate:
//! - `delivery.rs`: [`Delivery`] (built by [`DeliveryBuilder`]): `router()`, `publisher()`, `maintenance()`;
//!   [`Publisher::publish`] appends a [`TopicMessage`](social_schemas::TopicMessage) to history and fans it out.
//! - `config.rs`: [`DeliveryConfig`] (serde, defaults, `deny_unknown_fields`).
//! - `topics.rs`: topic names, kinds and access rules of CONTRACT section 3.
//! - `history.rs`: the [`History`] trait (positions `{epoch, offset}`, retention, gaps) and [`MemoryHistory`].
//! - `fanout.rs`: the [`FanOut`] trait (cross-node live publish) and [`LocalFanOut`].
//! - `hub.rs`: [`Hub`], this node's subscribers per topic, bounded queue per connection, slow-client cut-off.
//! - `session.rs`: one connection: subscribe, replay, reset + snapshot, then live without duplicates or gaps.
//! - `resume_token.rs`: the SSE `id:` encoding the position of every topic of a connection.
//! - `message.rs`: the wire JSON of `EVENT`, `SNAPSHOT` and `RESET` messages.
//! - `snapshot.rs`: [`SnapshotSource`] (current state of a topic) and [`MemorySnapshots`].
//! - `auth.rs`: Bearer header, single-use tickets ([`TicketStore`], [`MemoryTickets`]), HttpOnly cookie.
//! - `limits.rs`: connection limits; `stream_limits.rs`: [`StreamLimitStore`], per-user and per-address counts
//!   shared by every node (Redis); `address.rs`: the client address anonymous streams count under
//!   ([`IpNetwork`] for trusted proxies; `forwarded.rs` reads RFC 7239 `Forwarded` lines).
//! - `redis/`: the Redis backend ([`redis::RedisBackend`]): history, cross-node fan-out and tickets shared by every
//!   delivery node (key layout in [`redis::keys`] and `docs/REDIS.md`).
//! - `server.rs`: [`Delivery::serve`]: HTTP/1 serving, `GET /v1/stream` on a lean path without hyper's per-connection
//!   buffers, everything else through the router, on connections whose writes may not stall and which may not idle for
//!   ever (`stall.rs`).
//! - `routes/`: `stream` (`GET /v1/stream`), `poll` (`GET /v1/poll`), `snapshot`
//!   (`GET /v1/topics/{topic}/snapshot`), `tickets` (`POST /v1/tickets`).
//! - `page/`: the demo page (`/demo`, no build step, no external assets) and server-rendered leaderboard and
//!   trending pages.
//! - `metrics.rs`: the metrics of the spec's monitoring section, with labels from fixed sets, and the process's
//!   publish-to-write latency observer ([`observe_write_latency`]).
//! - `error.rs`: [`DeliveryError`]: every error answer is `{"error":{"code":"...","message":"..."}}`.

pub mod address;
mod auth;
mod config;
mod delivery;
mod error;
pub mod fanout;
mod forwarded;
pub mod history;
pub mod hub;
mod limits;
pub mod message;
mod metrics;
mod page;
pub mod redis;
pub mod resume_token;
mod routes;
mod server;
mod session;
pub mod snapshot;
mod stall;
pub mod stream_limits;
pub mod topics;

pub use address::{ForwardedHeader, IpNetwork};
pub use auth::{MemoryTickets, TicketStore};
pub use config::DeliveryConfig;
pub use delivery::{BatchOutcome, Delivery, DeliveryBuilder, Publisher};
pub use error::DeliveryError;
pub use fanout::{FanOut, LocalFanOut};
pub use history::{History, MemoryHistory, Position, Retention, SequencedAppend};
pub use hub::Hub;
pub use metrics::{LatencyObserver, observe_write_latency};
pub use snapshot::{MemorySnapshots, SnapshotSource};
pub use stream_limits::{StreamBounds, StreamLease, StreamLimitStore};
