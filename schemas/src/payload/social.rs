//! `social.share.created`, `social.share.engaged`.

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ValidationError;
use crate::limits::Limits;
use crate::time::Rfc3339;
use crate::validate::{
    ID_PATTERN, Validate, check_id, check_len, check_open_value, check_opt_id, check_opt_len,
};

/// What was shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    Project,
    Testimonial,
    Profile,
    ReferralLink,
    Portfolio,
}

/// Where it was shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Facebook,
    Twitter,
    Linkedin,
    Instagram,
    Pinterest,
    Whatsapp,
    Email,
    Sms,
    CopyLink,
    Other,
}

/// Format of the share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShareFormat {
    Post,
    Story,
    Message,
    Link,
}

/// Audience of a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShareVisibility {
    Public,
    Friends,
    Private,
}

/// Kind of engagement with a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EngagementType {
    Like,
    Comment,
    Share,
    Click,
    View,
    Save,
}

wire_strings!(ContentType {
    Project => "project",
    Testimonial => "testimonial",
    Profile => "profile",
    ReferralLink => "referral_link",
    Portfolio => "portfolio",
});

wire_strings!(Platform {
    Facebook => "facebook",
    Twitter => "twitter",
    Linkedin => "linkedin",
    Instagram => "instagram",
    Pinterest => "pinterest",
    Whatsapp => "whatsapp",
    Email => "email",
    Sms => "sms",
    CopyLink => "copy_link",
    Other => "other",
});

wire_strings!(ShareFormat {
    Post => "post",
    Story => "story",
    Message => "message",
    Link => "link",
});

wire_strings!(ShareVisibility {
    Public => "public",
    Friends => "friends",
    Private => "private",
});

wire_strings!(EngagementType {
    Like => "like",
    Comment => "comment",
    Share => "share",
    Click => "click",
    View => "view",
    Save => "save",
});

/// `social.share.created`. Partition key: `userId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareCreated {
    #[schemars(pattern(ID_PATTERN))]
    pub share_id: String,
    #[schemars(pattern(ID_PATTERN))]
    pub user_id: String,
    pub content_type: ContentType,
    #[schemars(pattern(ID_PATTERN))]
    pub content_id: String,
    pub platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_format: Option<ShareFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ShareMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Open object: the known keys are typed and checked; every other key is kept as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub image_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<ShareVisibility>,
    /// Keys other than the known ones, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

// Hand-written so that no `flatten` buffering happens and error paths stay precise (`metadata.imageCount`).
impl<'de> Deserialize<'de> for ShareMetadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ShareMetadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct ShareMetadata")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ShareMetadata, A::Error> {
                let mut out = ShareMetadata::default();
                let mut seen = [false; 3];
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "message" => 0,
                        "imageCount" => 1,
                        "visibility" => 2,
                        _ => {
                            let value = map.next_value::<crate::open_value::OpenValue>()?.0;
                            if out.extra.insert(key.clone(), value).is_some() {
                                return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                            }
                            continue;
                        }
                    };
                    if std::mem::replace(&mut seen[slot], true) {
                        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    match slot {
                        0 => out.message = map.next_value()?,
                        1 => out.image_count = map.next_value()?,
                        _ => out.visibility = map.next_value()?,
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Who engaged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EngagerInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub display_name: Option<String>,
}

/// `social.share.engaged`. Partition key: `shareId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareEngaged {
    #[schemars(pattern(ID_PATTERN))]
    pub share_id: String,
    pub engagement_type: EngagementType,
    pub engager_info: EngagerInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ID_PATTERN))]
    pub content_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::opt")]
    #[schemars(with = "Option<Rfc3339>")]
    pub timestamp: Option<DateTime<Utc>>,
}

impl Validate for ShareCreated {
    fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.shareId", &self.share_id)?;
        check_id("data.userId", &self.user_id)?;
        check_id("data.contentId", &self.content_id)?;
        if let Some(m) = &self.metadata {
            check_opt_len("data.metadata.message", m.message.as_deref(), 2000)?;
            if let Some(n) = m.image_count {
                crate::validate::check_int_range("data.metadata.imageCount", i64::from(n), 0, 1000)?;
            }
            for (k, v) in &m.extra {
                check_len(format_args!("data.metadata.{k}"), k, limits.max_text_len)?;
                check_open_value(&format_args!("data.metadata.{k}"), v, limits)?;
            }
        }
        Ok(())
    }
}

impl Validate for ShareEngaged {
    fn validate(&self, _limits: &Limits) -> Result<(), ValidationError> {
        check_id("data.shareId", &self.share_id)?;
        check_opt_id("data.engagerInfo.userId", self.engager_info.user_id.as_deref())?;
        check_opt_len(
            "data.engagerInfo.displayName",
            self.engager_info.display_name.as_deref(),
            128,
        )?;
        check_opt_id("data.contentId", self.content_id.as_deref())?;
        Ok(())
    }
}
