//! `AuthConfig`: which algorithm, which secret or keys, and what to require of a token.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::AuthError;

/// The default clock-skew allowance for `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// The largest accepted `leeway_secs`: more than this is a misconfiguration, not clock skew.
pub const MAX_LEEWAY_SECS: u64 = 600;
/// The shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// The one signature algorithm a deployment accepts. It is fixed by configuration, never read from a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared `secret`.
    #[default]
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; verification with `public_key_pem`, minting with `private_key_pem`.
    RS256,
    /// ECDSA on P-256 with SHA-256; verification with `public_key_pem`, minting with `private_key_pem`.
    ES256,
}

impl JwtAlgorithm {
    /// The name used in JWT headers and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
        }
    }

    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            JwtAlgorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            JwtAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            JwtAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwtAlgorithm {
    type Err = AuthError;

    /// Parses `HS256`, `RS256` or `ES256`, ignoring ASCII case (for command-line options).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [JwtAlgorithm::HS256, JwtAlgorithm::RS256, JwtAlgorithm::ES256]
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| AuthError::config("algorithm must be one of HS256, RS256, ES256"))
    }
}

/// How tokens are verified (and, for development and tests, minted).
///
/// Settings that the chosen algorithm does not use are rejected rather than ignored: an HS256 configuration
/// with a key, or an RS256/ES256 configuration with a secret, is an error.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The only algorithm accepted. Default `HS256`.
    pub algorithm: JwtAlgorithm,
    /// The HS256 shared secret, at least [`MIN_HS256_SECRET_BYTES`] bytes.
    pub secret: Option<String>,
    /// PEM public key (`PUBLIC KEY`, or `RSA PUBLIC KEY` for RS256) used to verify RS256/ES256 tokens.
    pub public_key_pem: Option<String>,
    /// PEM PKCS#8 private key (`PRIVATE KEY`, or `RSA PRIVATE KEY` for RS256); only needed to mint tokens.
    pub private_key_pem: Option<String>,
    /// When set, tokens must carry exactly this `iss`.
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud` (alone or in an array).
    pub audience: Option<String>,
    /// Allowed clock skew for `exp` and `nbf`, in seconds. Default 30, at most [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: None,
            public_key_pem: None,
            private_key_pem: None,
            issuer: None,
            audience: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

impl AuthConfig {
    /// An HS256 configuration with the given shared secret and every other setting at its default.
    pub fn hs256(secret: impl Into<String>) -> Self {
        AuthConfig {
            secret: Some(secret.into()),
            ..AuthConfig::default()
        }
    }

    /// Checks what verifying and minting have in common: leeway bounds, non-empty iss/aud, and that no
    /// setting of another algorithm is present.
    pub(crate) fn check_common(&self) -> Result<(), AuthError> {
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(AuthError::config(format!(
                "leeway_secs must be at most {MAX_LEEWAY_SECS}"
            )));
        }
        if self.issuer.as_deref().is_some_and(str::is_empty) {
            return Err(AuthError::config("issuer must not be empty when set"));
        }
        if self.audience.as_deref().is_some_and(str::is_empty) {
            return Err(AuthError::config("audience must not be empty when set"));
        }
        match self.algorithm {
            JwtAlgorithm::HS256 => {
                if self.public_key_pem.is_some() || self.private_key_pem.is_some() {
                    return Err(AuthError::config("HS256 uses `secret`; remove the PEM keys"));
                }
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                if self.secret.is_some() {
                    return Err(AuthError::config(format!(
                        "{} uses PEM keys; remove `secret`",
                        self.algorithm
                    )));
                }
            }
        }
        Ok(())
    }

    /// The HS256 secret, checked for presence and length.
    pub(crate) fn hs256_secret(&self) -> Result<&[u8], AuthError> {
        let secret = self
            .secret
            .as_deref()
            .ok_or_else(|| AuthError::config("HS256 needs `secret`"))?;
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(AuthError::config(format!(
                "the HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes"
            )));
        }
        Ok(secret.as_bytes())
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn redacted(value: &Option<String>) -> Option<&'static str> {
            value.as_ref().map(|_| "[redacted]")
        }
        f.debug_struct("AuthConfig")
            .field("algorithm", &self.algorithm)
            .field("secret", &redacted(&self.secret))
            .field("public_key_pem", &redacted(&self.public_key_pem))
            .field("private_key_pem", &redacted(&self.private_key_pem))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_from_empty_json() {
        let config: AuthConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, AuthConfig::default());
        assert_eq!(config.algorithm, JwtAlgorithm::HS256);
        assert_eq!(config.leeway_secs, 30);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let result = serde_json::from_str::<AuthConfig>(r#"{"algorithm":"RS256","alg":"none"}"#);
        assert!(result.is_err());
    }

    #[test]
    fn algorithm_names() {
        let config: AuthConfig = serde_json::from_str(r#"{"algorithm":"ES256"}"#).unwrap();
        assert_eq!(config.algorithm, JwtAlgorithm::ES256);
        assert!(serde_json::from_str::<AuthConfig>(r#"{"algorithm":"none"}"#).is_err());
        assert_eq!("rs256".parse::<JwtAlgorithm>().unwrap(), JwtAlgorithm::RS256);
        assert!("none".parse::<JwtAlgorithm>().is_err());
        assert_eq!(JwtAlgorithm::ES256.to_string(), "ES256");
    }

    #[test]
    fn debug_redacts_secrets_and_keys() {
        let config = AuthConfig {
            secret: Some("super-secret-value".into()),
            public_key_pem: Some("PUBLIC-KEY-MATERIAL".into()),
            private_key_pem: Some("PRIVATE-KEY-MATERIAL".into()),
            issuer: Some("issuer-x".into()),
            ..AuthConfig::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("super-secret-value"), "{debug}");
        assert!(!debug.contains("KEY-MATERIAL"), "{debug}");
        assert!(
            debug.contains("[redacted]") && debug.contains("issuer-x"),
            "{debug}"
        );
    }

    #[test]
    fn common_checks() {
        let ok = AuthConfig::hs256("x".repeat(32));
        assert!(ok.check_common().is_ok());
        let cases = [
            AuthConfig {
                leeway_secs: MAX_LEEWAY_SECS + 1,
                ..ok.clone()
            },
            AuthConfig {
                issuer: Some(String::new()),
                ..ok.clone()
            },
            AuthConfig {
                audience: Some(String::new()),
                ..ok.clone()
            },
            AuthConfig {
                public_key_pem: Some("k".into()),
                ..ok.clone()
            },
            AuthConfig {
                algorithm: JwtAlgorithm::RS256,
                ..ok.clone()
            },
        ];
        for config in cases {
            assert_eq!(
                config.check_common().map_err(|e| e.code()),
                Err("auth_misconfigured")
            );
        }
    }

    #[test]
    fn short_or_missing_secret_is_rejected() {
        assert!(AuthConfig::hs256("x".repeat(31)).hs256_secret().is_err());
        assert!(AuthConfig::default().hs256_secret().is_err());
        assert!(AuthConfig::hs256("x".repeat(32)).hs256_secret().is_ok());
    }
}
