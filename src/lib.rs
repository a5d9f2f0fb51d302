//! The `social-realtime` binary as a library, so tests can drive every subcommand in process.
//!
//! Map of the system:
//! - `social_schemas`: CloudEvents envelope, input event types, validation, derived messages;
//! - `social_auth`: JWT verification and minting;
//! - `social_pipeline`: the event bus (embedded memory and durable, Fluvio), ingest, generator, operators;
//! - `social_delivery`: SSE delivery, polling, snapshots, operations routes;
//! - here: [`cli`] (options and their environment variables), [`commands`] (one module per subcommand),
//!   [`server`] (wiring the tiers into one HTTP server), [`telemetry`] (logs and metrics).

pub mod cli;
pub mod commands;
pub mod server;
pub mod telemetry;
