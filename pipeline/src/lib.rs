//! The pipeline tier: the event bus, ingest, synthetic traffic and the stream operators.
//!
//! - [`bus`]: the `Bus` trait (topics, partitions, offsets) and the embedded in-memory and durable buses;
//! - [`ingest`]: `POST /v1/events` validated onto the input topic, rejected input onto the dead-letter topic;
//! - `generate`: reproducible synthetic traffic.

pub mod bus;
pub mod generate;
pub mod ingest;
pub mod operator;
pub mod window;
