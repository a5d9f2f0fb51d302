//! `message.sent.social`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::limits::Limits;
use crate::time::Rfc3339;
use crate::validate::{ID_PATTERN, Validate, check_id, check_opt_id};

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageContext {
    Share,
    Referral,
    Testimonial,
    Project,
}

wire_strings!(MessageContext {
    Share => "share",
    Referral => "referral",
    Testimonial => "testimonial",
    Project => "project",
});

/// `message.sent.social`. Partition key: `senderId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageSentSocial {
    #[schemars(pattern(ID_PATTERN))]
    pub message_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub sender_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub recipient_id: String,
    pub context: MessageContext,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub share_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

impl Validate for MessageSentSocial {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.messageId", &self.message_id)?;
        check_id("data.senderId", &self.sender_id)?;
        check_id("data.recipientId", &self.recipient_id)?;
        check_opt_id("data.shareId", self.share_id.as_deref())
    }
}
