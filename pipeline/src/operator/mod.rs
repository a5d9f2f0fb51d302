//! The stream operators: synchronous and pure (event in, state update, messages out; no I/O, no wall clock).
//!
//! - [`engine::Engine`]: watermarks + event-time buffer + [`graph::OperatorGraph`]; the unit the topology runs,
//!   the property tests check and the benchmark measures;
//! - [`graph`]: dispatches each event through the operators in a fixed order, in two sides that share no state
//!   (referral and social) and may run on two threads with the same output;
//! - [`dedup`]: drops copies of an input event (same `source` and `id`) while they could still count;
//! - [`directory`]: referral attribution (codes to referrers, who referred whom) and privacy settings;
//! - [`waiting`]: late events that name a code or share not seen yet, until it comes;
//! - one file per live feature: [`counters`], [`rewards`], [`leaderboard`], [`engagement`], [`trending`],
//!   [`notifications`], [`testimonials`], [`fraud`];
//! - [`output`]: what operators emit ([`output::Output`] = destination + `TopicMessage`, snapshot updates);
//! - [`ids`]: deterministic message ids; [`config`]: the serde configuration; [`metrics`]: metric names.

pub mod config;
pub mod counters;
pub mod dedup;
pub mod directory;
pub mod engagement;
pub mod engine;
pub mod fraud;
pub mod graph;
pub mod ids;
pub mod leaderboard;
pub mod metrics;
pub mod notifications;
pub mod output;
pub mod rewards;
pub mod testimonials;
pub mod trending;
pub mod waiting;

pub use config::OperatorConfig;
pub use engine::{Engine, EngineError, EngineState, LateStats};
pub use output::{Destination, Emitter, Output, SnapshotUpdate};
