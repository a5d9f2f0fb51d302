//! The claims this platform reads from (and writes into) a token.

use serde::{Deserialize, Serialize};

use crate::AuthError;

/// The role that may subscribe to any topic.
pub const ROLE_ADMIN: &str = "admin";
/// The role that may post events to ingest.
pub const ROLE_SERVICE: &str = "service";

/// The claims of a verified token. Claims not listed here are ignored.
///
/// Times are JWT NumericDates: whole seconds since the Unix epoch (non-integer values are rejected as
/// malformed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry time (required).
    pub exp: u64,
    /// Not-before time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued-at time (informational, not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer; checked only when an issuer is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: a string or an array of strings; checked only when an audience is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// Ids of the referral programs the user belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
    /// Roles such as [`ROLE_ADMIN`] and [`ROLE_SERVICE`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl Claims {
    /// Whether the token carries exactly this role (no role implies another).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }

    /// Whether the token carries [`ROLE_ADMIN`].
    pub fn is_admin(&self) -> bool {
        self.has_role(ROLE_ADMIN)
    }

    /// Whether `program_id` is in the `programs` claim.
    pub fn is_member_of(&self, program_id: &str) -> bool {
        self.programs.iter().any(|program| program == program_id)
    }

    /// `Ok` if the token carries `role`, else [`AuthError::MissingRole`] (HTTP 403).
    pub fn require_role(&self, role: &str) -> Result<(), AuthError> {
        if self.has_role(role) {
            Ok(())
        } else {
            Err(AuthError::MissingRole(role.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(roles: &[&str], programs: &[&str]) -> Claims {
        Claims {
            sub: "u1".into(),
            exp: 10,
            nbf: None,
            iat: None,
            iss: None,
            aud: None,
            programs: programs.iter().map(|p| p.to_string()).collect(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn role_and_membership_helpers() {
        let user = claims(&[], &["p1"]);
        assert!(!user.is_admin() && !user.has_role(ROLE_SERVICE));
        assert!(user.is_member_of("p1") && !user.is_member_of("p2"));
        assert_eq!(
            user.require_role(ROLE_SERVICE),
            Err(AuthError::MissingRole("service".into()))
        );

        let admin = claims(&[ROLE_ADMIN], &[]);
        assert!(admin.is_admin() && !admin.has_role(ROLE_SERVICE));
        assert!(claims(&[ROLE_SERVICE], &[]).require_role(ROLE_SERVICE).is_ok());
    }

    #[test]
    fn optional_claims_default_and_extra_claims_are_ignored() {
        let parsed: Claims = serde_json::from_str(r#"{"sub":"u","exp":5,"name":"x"}"#).unwrap();
        assert_eq!((parsed.sub.as_str(), parsed.exp), ("u", 5));
        assert!(parsed.roles.is_empty() && parsed.programs.is_empty() && parsed.nbf.is_none());
        assert!(serde_json::from_str::<Claims>(r#"{"sub":"u"}"#).is_err());
        assert!(serde_json::from_str::<Claims>(r#"{"sub":"u","exp":5.5}"#).is_err());
    }
}
