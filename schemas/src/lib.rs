//! Event schemas: the CloudEvents envelope, the typed input events and their validation, and the messages the
//! pipeline derives from them. The catalogue is documented in `docs/EVENTS.md`.
//!
//! Entry point: [`parse_event`] turns raw JSON into a validated [`Event`] or a [`ValidationError`] with a stable
//! [`ValidationCode`]. [`Event::to_json`] writes the canonical form back.

pub mod derived;
pub mod envelope;
pub mod error;
pub mod event_type;
pub mod json_schema;
pub mod limits;
mod open_value;
pub mod payload;
pub mod time;
pub mod validate;

pub use derived::TopicMessage;
pub use envelope::{Event, parse_event};
pub use error::{ValidationCode, ValidationError, check_not_ahead};
pub use event_type::EventType;
pub use limits::Limits;
pub use payload::*;
