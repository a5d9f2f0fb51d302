//! `user.registered`, `user.profile.updated`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::limits::Limits;
use crate::time::Rfc3339;
use crate::validate::{ID_PATTERN, Validate, check_array_len, check_id, check_opt_id, check_opt_len};

/// Role chosen at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Homeowner,
    Contractor,
    Partner,
}

wire_strings!(UserRole {
    Homeowner => "homeowner",
    Contractor => "contractor",
    Partner => "partner",
});

/// `user.registered`. Partition key: `userId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserRegistered {
    #[schemars(pattern(ID_PATTERN))]
    pub user_id: String,
    pub role: UserRole,
    /// The `codeId` used at sign-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub referral_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Privacy settings; an absent flag is unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivacySettings {
    /// `false`: the user's activity is never shown on public topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_broadcast: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incognito: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_referrals: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_rewards: Option<bool>,
}

/// Maximum number of user ids in `connections.added` and in `connections.removed`.
pub const MAX_CONNECTION_CHANGES: usize = 1000;

/// Connections added and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), inner(pattern(ID_PATTERN)))]
    pub added: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), inner(pattern(ID_PATTERN)))]
    pub removed: Option<Vec<String>>,
}

/// `user.profile.updated`. Partition key: `userId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileUpdated {
    #[schemars(pattern(ID_PATTERN))]
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacySettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionChanges>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

impl Validate for UserRegistered {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.userId", &self.user_id)?;
        check_opt_id("data.referralCode", self.referral_code.as_deref())?;
        check_opt_len("data.displayName", self.display_name.as_deref(), 128)
    }
}

impl Validate for ProfileUpdated {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.userId", &self.user_id)?;
        check_opt_len("data.displayName", self.display_name.as_deref(), 128)?;
        if let Some(c) = &self.connections {
            for (name, list) in [("added", &c.added), ("removed", &c.removed)] {
                if let Some(list) = list {
                    check_array_len(
                        format_args!("data.connections.{name}"),
                        list.len(),
                        MAX_CONNECTION_CHANGES,
                    )?;
                    for (i, id) in list.iter().enumerate() {
                        check_id(format_args!("data.connections.{name}[{i}]"), id)?;
                    }
                }
            }
        }
        Ok(())
    }
}
