//! `testimonial.published`, `testimonial.engaged`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::limits::Limits;
use crate::time::Rfc3339;
use crate::validate::{ID_PATTERN, Validate, check_id, check_int_range, check_opt_id, check_opt_len};

/// Kind of engagement with a testimonial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestimonialEngagementType {
    Like,
    Comment,
    Share,
    Helpful,
}

wire_strings!(TestimonialEngagementType {
    Like => "like",
    Comment => "comment",
    Share => "share",
    Helpful => "helpful",
});

/// `testimonial.published`. Partition key: `authorId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestimonialPublished {
    #[schemars(pattern(ID_PATTERN))]
    pub testimonial_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub author_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub subject_user_id: String,
    /// 1 to 5.
    #[schemars(range(min = 1, max = 5))]
    pub rating: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    pub excerpt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// `testimonial.engaged`. Partition key: `testimonialId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestimonialEngaged {
    #[schemars(pattern(ID_PATTERN))]
    pub testimonial_id: String,
    pub engagement_type: TestimonialEngagementType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub engager_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

impl Validate for TestimonialPublished {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.testimonialId", &self.testimonial_id)?;
        check_id("data.authorId", &self.author_id)?;
        check_id("data.subjectUserId", &self.subject_user_id)?;
        check_int_range("data.rating", i64::from(self.rating), 1, 5)?;
        check_opt_id("data.projectId", self.project_id.as_deref())?;
        check_opt_len("data.excerpt", self.excerpt.as_deref(), 500)
    }
}

impl Validate for TestimonialEngaged {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.testimonialId", &self.testimonial_id)?;
        check_opt_id("data.engagerId", self.engager_id.as_deref())
    }
}
