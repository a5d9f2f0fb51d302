//! `Verifier`: checks a token's signature, algorithm, times, issuer and audience.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

use crate::{AuthConfig, AuthError, Claims, JwtAlgorithm};

/// Tokens longer than this are rejected as malformed before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Verifies tokens against one [`AuthConfig`]. Build it once and share it (it is `Clone`, `Send` and
/// `Sync`); the key is parsed and the validation rules are built in [`Verifier::new`].
#[derive(Clone)]
pub struct Verifier {
    algorithm: JwtAlgorithm,
    key: DecodingKey,
    validation: Validation,
    leeway_secs: u64,
}

impl Verifier {
    /// Builds a verifier, rejecting an unusable configuration with [`AuthError::Config`].
    pub fn new(config: &AuthConfig) -> Result<Verifier, AuthError> {
        config.check_common()?;
        let algorithm = config.algorithm;
        let key = decoding_key(config)?;
        // Runs the crypto backend's key checks now rather than on the first request (it rejects, for
        // example, a P-384 key configured for ES256).
        jsonwebtoken::crypto::verify("", b"", &key, algorithm.to_jsonwebtoken())
            .map_err(|_| AuthError::config(format!("public_key_pem is not usable for {algorithm}")))?;

        let mut validation = Validation::new(algorithm.to_jsonwebtoken());
        // `exp` and `nbf` are checked by `check_times`, against a clock the caller can supply.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        let mut required = vec!["exp"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Without a configured audience a token's `aud` is not checked (the library would reject any).
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);

        Ok(Verifier {
            algorithm,
            key,
            validation,
            leeway_secs: config.leeway_secs,
        })
    }

    /// Verifies `token` against the system clock.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_at(token, unix_now()?)
    }

    /// Verifies `token` as of `now_unix` (seconds since the Unix epoch); for tests and replays.
    pub fn verify_at(&self, token: &str, now_unix: u64) -> Result<Claims, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::MissingToken);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| self.classify(error.kind(), token))?
            .claims;
        if claims.sub.is_empty() {
            return Err(AuthError::Malformed);
        }
        check_times(&claims, now_unix, self.leeway_secs)?;
        Ok(claims)
    }

    /// The configured algorithm.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    fn classify(&self, kind: &ErrorKind, token: &str) -> AuthError {
        match kind {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::UnsupportedAlgorithm => AuthError::AlgorithmNotAllowed,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::BadIssuer,
            ErrorKind::InvalidAudience => AuthError::BadAudience,
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "iss" => AuthError::BadIssuer,
                "aud" => AuthError::BadAudience,
                _ => AuthError::Malformed,
            },
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::MissingAlgorithm
            | ErrorKind::Provider(_) => AuthError::config(format!(
                "the configured key cannot verify {} tokens",
                self.algorithm
            )),
            // The library cannot parse a header naming an algorithm it does not know (`none`, ...): report
            // that as what it is rather than as a malformed token.
            ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_)
                if header_algorithm(token).is_some_and(|alg| alg != self.algorithm.as_str()) =>
            {
                AuthError::AlgorithmNotAllowed
            }
            _ => AuthError::Malformed,
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

fn decoding_key(config: &AuthConfig) -> Result<DecodingKey, AuthError> {
    let pem = || -> Result<&[u8], AuthError> {
        let pem = config
            .public_key_pem
            .as_deref()
            .ok_or_else(|| AuthError::config(format!("{} needs `public_key_pem`", config.algorithm)))?;
        if pem.contains("PRIVATE KEY") {
            return Err(AuthError::config(
                "public_key_pem holds a private key; give the public key",
            ));
        }
        Ok(pem.as_bytes())
    };
    let not_a_key = |kind: &str| AuthError::config(format!("public_key_pem is not a PEM {kind} public key"));
    match config.algorithm {
        JwtAlgorithm::HS256 => Ok(DecodingKey::from_secret(config.hs256_secret()?)),
        JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem()?).map_err(|_| not_a_key("RSA")),
        JwtAlgorithm::ES256 => DecodingKey::from_ec_pem(pem()?).map_err(|_| not_a_key("EC")),
    }
}

/// RFC 7519: a token is invalid on or after `exp` and before `nbf`; both widened by the leeway.
fn check_times(claims: &Claims, now_unix: u64, leeway_secs: u64) -> Result<(), AuthError> {
    if now_unix >= claims.exp.saturating_add(leeway_secs) {
        return Err(AuthError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| now_unix.saturating_add(leeway_secs) < nbf)
    {
        return Err(AuthError::NotYetValid);
    }
    Ok(())
}

/// The `alg` named by the token's header, if the header is base64url JSON with a string `alg`.
fn header_algorithm(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct AlgorithmOnly {
        alg: String,
    }
    let header = token.split('.').next()?;
    let json = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<AlgorithmOnly>(&json)
        .ok()
        .map(|header| header.alg)
}

pub(crate) fn unix_now() -> Result<u64, AuthError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .map_err(|_| AuthError::config("the system clock is before the Unix epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64, nbf: Option<u64>) -> Claims {
        Claims {
            sub: "u".into(),
            exp,
            nbf,
            iat: None,
            iss: None,
            aud: None,
            programs: vec![],
            roles: vec![],
        }
    }

    #[test]
    fn expiry_boundaries() {
        assert_eq!(check_times(&claims(100, None), 99, 0), Ok(()));
        assert_eq!(check_times(&claims(100, None), 100, 0), Err(AuthError::Expired));
        assert_eq!(check_times(&claims(100, None), 129, 30), Ok(()));
        assert_eq!(check_times(&claims(100, None), 130, 30), Err(AuthError::Expired));
        assert_eq!(check_times(&claims(u64::MAX, None), u64::MAX - 1, 600), Ok(()));
    }

    #[test]
    fn not_before_boundaries() {
        assert_eq!(check_times(&claims(1000, Some(100)), 100, 0), Ok(()));
        assert_eq!(
            check_times(&claims(1000, Some(100)), 99, 0),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(check_times(&claims(1000, Some(100)), 70, 30), Ok(()));
        assert_eq!(
            check_times(&claims(1000, Some(100)), 69, 30),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(
            check_times(&claims(u64::MAX, Some(u64::MAX)), u64::MAX - 1, 600),
            Ok(())
        );
    }

    #[test]
    fn header_algorithm_peek() {
        // {"alg":"none","typ":"JWT"}
        assert_eq!(
            header_algorithm("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.e30.").as_deref(),
            Some("none")
        );
        assert_eq!(header_algorithm("not base64!.x.y"), None);
        assert_eq!(header_algorithm(""), None);
    }
}
