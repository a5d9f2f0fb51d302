//! The pipeline tier: the event bus, ingest, synthetic traffic and the stream operators.
//!
//! - [`bus`]: the `Bus` trait (topics, partitions, offsets) and the embedded in-memory and durable buses;
//! - [`ingest`]: `POST /v1/events` validated onto the input topic, rejected input onto the dead-letter topic;
//! - `generate`: reproducible synthetic traffic;
//! - [`window`]: event time, watermarks, window assigners and window state;
//! - [`operator`]: the synchronous stream operators (one per live feature) and their engine;
//! - [`checkpoint`]: atomic checkpoint files of operator state and input offsets;
//! - [`topology`]: the async runner: bus -> operators -> output sink and topic snapshots.

pub mod bus;
pub mod checkpoint;
pub mod generate;
pub mod ingest;
pub mod operator;
pub mod topology;
pub mod window;
