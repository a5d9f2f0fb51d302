//! `referral.*` events.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::limits::Limits;
use crate::time::Rfc3339;
use crate::validate::{
    ID_PATTERN, Validate, check_amount, check_id, check_int_range, check_ip, check_len, check_opt_id,
    check_opt_len,
};

/// Stage of a referral conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversionStage {
    SignupStarted,
    EmailVerified,
    ProfileCompleted,
    FirstProject,
}

/// What completed a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversionType {
    Registration,
    FirstProject,
    FirstBid,
}

/// Kind of reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RewardType {
    Credit,
    Cash,
    Discount,
    Points,
}

/// State of a reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RewardStatus {
    Pending,
    Approved,
    Paid,
}

wire_strings!(ConversionStage {
    SignupStarted => "signup_started",
    EmailVerified => "email_verified",
    ProfileCompleted => "profile_completed",
    FirstProject => "first_project",
});

wire_strings!(ConversionType {
    Registration => "registration",
    FirstProject => "first_project",
    FirstBid => "first_bid",
});

wire_strings!(RewardType {
    Credit => "credit",
    Cash => "cash",
    Discount => "discount",
    Points => "points",
});

wire_strings!(RewardStatus {
    Pending => "pending",
    Approved => "approved",
    Paid => "paid",
});

/// `referral.code.generated`. Partition key: `userId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeGenerated {
    #[schemars(pattern(ID_PATTERN))]
    pub code_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub user_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub program_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `referral.link.clicked`. Partition key: `referralId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkClicked {
    /// The `codeId` of the code used.
    #[schemars(pattern(ID_PATTERN))]
    pub referral_id: String,
    /// IPv4 or IPv6 address text.
    #[schemars(extend("format" = "ip"))]
    pub source_ip: String,
    #[schemars(length(max = 512))]
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub landing_page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `referral.conversion.started`. Partition key: `referralId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversionStarted {
    #[schemars(pattern(ID_PATTERN))]
    pub referral_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub prospect_id: String,
    pub stage: ConversionStage,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Reward attached to a completed conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reward {
    /// JSON `type`.
    #[serde(rename = "type")]
    pub kind: RewardType,
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub amount: f64,
    pub status: RewardStatus,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub eligible_date: Option<DateTime<Utc>>,
}

/// `referral.conversion.completed`. Partition key: `referrerId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversionCompleted {
    #[schemars(pattern(ID_PATTERN))]
    pub referral_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub new_user_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub referrer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub program_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_type: Option<ConversionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<Reward>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `referral.reward.earned`. Partition key: `userId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewardEarned {
    #[schemars(pattern(ID_PATTERN))]
    pub user_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub reward_id: String,
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub amount: f64,
    /// JSON `type`.
    #[serde(rename = "type")]
    pub kind: RewardType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub program_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub referral_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// One rank change on a leaderboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderboardChange {
    #[schemars(pattern(ID_PATTERN))]
    pub user_id: String,
    /// 1-based rank.
    #[schemars(range(min = 1))]
    pub position: u32,
    pub delta: i64,
}

/// Maximum number of entries in `referral.leaderboard.updated` `changes`.
pub const MAX_LEADERBOARD_CHANGES: usize = 1000;

/// `referral.leaderboard.updated`. Partition key: `boardId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderboardUpdated {
    #[schemars(pattern(ID_PATTERN))]
    pub board_id: String,
    #[schemars(length(max = 1000))]
    pub changes: Vec<LeaderboardChange>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

impl Validate for CodeGenerated {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.codeId", &self.code_id)?;
        check_id("data.userId", &self.user_id)?;
        check_id("data.programId", &self.program_id)
    }
}

impl Validate for LinkClicked {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.referralId", &self.referral_id)?;
        check_ip("data.sourceIp", &self.source_ip)?;
        check_len("data.userAgent", &self.user_agent, 512)?;
        check_opt_len("data.landingPage", self.landing_page.as_deref(), 2000)
    }
}

impl Validate for ConversionStarted {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.referralId", &self.referral_id)?;
        check_id("data.prospectId", &self.prospect_id)
    }
}

impl Validate for ConversionCompleted {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.referralId", &self.referral_id)?;
        check_id("data.newUserId", &self.new_user_id)?;
        check_id("data.referrerId", &self.referrer_id)?;
        check_opt_id("data.programId", self.program_id.as_deref())?;
        if let Some(r) = &self.reward {
            check_amount("data.reward.amount", r.amount)?;
        }
        Ok(())
    }
}

impl Validate for RewardEarned {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.userId", &self.user_id)?;
        check_id("data.rewardId", &self.reward_id)?;
        check_amount("data.amount", self.amount)?;
        check_opt_id("data.programId", self.program_id.as_deref())?;
        check_opt_id("data.referralId", self.referral_id.as_deref())
    }
}

impl Validate for LeaderboardUpdated {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.boardId", &self.board_id)?;
        crate::validate::check_array_len("data.changes", self.changes.len(), MAX_LEADERBOARD_CHANGES)?;
        for (i, c) in self.changes.iter().enumerate() {
            check_id(format_args!("data.changes[{i}].userId"), &c.user_id)?;
            check_int_range(
                format_args!("data.changes[{i}].position"),
                i64::from(c.position),
                1,
                i64::MAX,
            )?;
        }
        Ok(())
    }
}
