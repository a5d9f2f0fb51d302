//! `project.created`, `project.completed`, `bid.awarded`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::limits::Limits;
use crate::time::Rfc3339;
use crate::validate::{ID_PATTERN, Validate, check_amount, check_id, check_len, check_opt_len};

/// Who may see a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectVisibility {
    Public,
    Private,
}

wire_strings!(ProjectVisibility {
    Public => "public",
    Private => "private",
});

/// `project.created`. Partition key: `ownerId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectCreated {
    #[schemars(pattern(ID_PATTERN))]
    pub project_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub owner_id: String,
    #[schemars(length(max = 200))]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<ProjectVisibility>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `project.completed`. Partition key: `ownerId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectCompleted {
    #[schemars(pattern(ID_PATTERN))]
    pub project_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub owner_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub contractor_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `bid.awarded`. Partition key: `contractorId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BidAwarded {
    #[schemars(pattern(ID_PATTERN))]
    pub bid_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub project_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub contractor_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub homeowner_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub amount: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

impl Validate for ProjectCreated {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.projectId", &self.project_id)?;
        check_id("data.ownerId", &self.owner_id)?;
        check_len("data.title", &self.title, 200)?;
        check_opt_len("data.category", self.category.as_deref(), 64)
    }
}

impl Validate for ProjectCompleted {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.projectId", &self.project_id)?;
        check_id("data.ownerId", &self.owner_id)?;
        check_id("data.contractorId", &self.contractor_id)
    }
}

impl Validate for BidAwarded {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.bidId", &self.bid_id)?;
        check_id("data.projectId", &self.project_id)?;
        check_id("data.contractorId", &self.contractor_id)?;
        check_id("data.homeownerId", &self.homeowner_id)?;
        if let Some(a) = self.amount {
            check_amount("data.amount", a)?;
        }
        Ok(())
    }
}
