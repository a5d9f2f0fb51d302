//! `Minter`: signs tokens for the `token` subcommand and for tests.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};

use crate::{AuthConfig, AuthError, Claims, JwtAlgorithm};

/// Signs tokens with the configured algorithm and secret or private key.
#[derive(Clone)]
pub struct Minter {
    algorithm: JwtAlgorithm,
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Minter {
    /// Builds a minter, rejecting an unusable configuration with [`AuthError::Config`]. RS256 and ES256 need
    /// `private_key_pem` (PKCS#8 `PRIVATE KEY`, or `RSA PRIVATE KEY` for RS256).
    pub fn new(config: &AuthConfig) -> Result<Minter, AuthError> {
        config.check_common()?;
        let algorithm = config.algorithm;
        let key = encoding_key(config)?;
        // Signing once now turns a key the backend cannot use (wrong curve, not a private key) into a
        // configuration error instead of a failure on first use.
        jsonwebtoken::crypto::sign(b"probe", &key, algorithm.to_jsonwebtoken())
            .map_err(|_| AuthError::config(format!("private_key_pem is not usable for {algorithm}")))?;
        Ok(Minter {
            algorithm,
            key,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    /// A token for `sub` issued at `now_unix` and expiring `ttl` later (whole seconds), with `iss` and `aud`
    /// set when configured.
    pub fn mint(
        &self,
        sub: &str,
        roles: &[String],
        programs: &[String],
        ttl: Duration,
        now_unix: u64,
    ) -> Result<String, AuthError> {
        if sub.is_empty() {
            return Err(AuthError::config("the subject must not be empty"));
        }
        if ttl.as_secs() == 0 {
            return Err(AuthError::config("the ttl must be at least one second"));
        }
        let claims = Claims {
            sub: sub.to_owned(),
            exp: now_unix.saturating_add(ttl.as_secs()),
            nbf: None,
            iat: Some(now_unix),
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(serde_json::Value::String),
            programs: programs.to_vec(),
            roles: roles.to_vec(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm.to_jsonwebtoken()), &claims, &self.key)
            .map_err(|_| AuthError::config(format!("signing a {} token failed", self.algorithm)))
    }

    /// The configured algorithm.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minter")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

fn encoding_key(config: &AuthConfig) -> Result<EncodingKey, AuthError> {
    let pem = || {
        config
            .private_key_pem
            .as_deref()
            .map(str::as_bytes)
            .ok_or_else(|| {
                AuthError::config(format!(
                    "minting {} tokens needs `private_key_pem`",
                    config.algorithm
                ))
            })
    };
    let not_a_key =
        |kind: &str| AuthError::config(format!("private_key_pem is not a PEM {kind} private key"));
    match config.algorithm {
        JwtAlgorithm::HS256 => Ok(EncodingKey::from_secret(config.hs256_secret()?)),
        JwtAlgorithm::RS256 => EncodingKey::from_rsa_pem(pem()?).map_err(|_| not_a_key("RSA")),
        JwtAlgorithm::ES256 => EncodingKey::from_ec_pem(pem()?).map_err(|_| not_a_key("PKCS#8 EC")),
    }
}
