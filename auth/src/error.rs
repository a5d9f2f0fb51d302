//! The crate's one error type, with a stable code and HTTP status for each variant.

/// Why a request could not be authenticated or authorised, or why the auth module could not be set up.
///
/// Messages are safe to show to clients and to log: they never contain the token, the secret or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("no bearer token was presented")]
    MissingToken,
    /// The token is not a well-formed JWT, or its claims do not have the expected shape.
    #[error("the token is malformed")]
    Malformed,
    /// The token's `exp` has passed (beyond the configured leeway).
    #[error("the token has expired")]
    Expired,
    /// The token's `nbf` is still in the future (beyond the configured leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The signature does not match the configured key.
    #[error("the token signature is invalid")]
    BadSignature,
    /// The token's header names an algorithm other than the configured one (including `none`).
    #[error("the token algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// An issuer is configured and the token's `iss` is missing or different.
    #[error("the token issuer is not accepted")]
    BadIssuer,
    /// An audience is configured and the token's `aud` is missing or does not contain it.
    #[error("the token audience is not accepted")]
    BadAudience,
    /// The token is valid but lacks the role the operation needs.
    #[error("the token lacks the required role `{0}`")]
    MissingRole(String),
    /// The auth configuration is unusable (missing or invalid secret or key, bad leeway, ...).
    #[error("authentication is misconfigured: {0}")]
    Config(String),
}

impl AuthError {
    /// A stable `snake_case` code for the `{"error":{"code":...}}` body of the contract.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::Malformed => "malformed_token",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::BadSignature => "invalid_signature",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::BadIssuer => "invalid_issuer",
            AuthError::BadAudience => "invalid_audience",
            AuthError::MissingRole(_) => "missing_role",
            AuthError::Config(_) => "auth_misconfigured",
        }
    }

    /// The HTTP status to answer with: 401 for token problems, 403 for a missing role, 500 for configuration.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::MissingRole(_) => 403,
            AuthError::Config(_) => 500,
            AuthError::MissingToken
            | AuthError::Malformed
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::BadSignature
            | AuthError::AlgorithmNotAllowed
            | AuthError::BadIssuer
            | AuthError::BadAudience => 401,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        AuthError::Config(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::AuthError;

    fn all() -> Vec<AuthError> {
        vec![
            AuthError::MissingToken,
            AuthError::Malformed,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::BadSignature,
            AuthError::AlgorithmNotAllowed,
            AuthError::BadIssuer,
            AuthError::BadAudience,
            AuthError::MissingRole("service".into()),
            AuthError::Config("no secret".into()),
        ]
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let codes: Vec<&str> = all().iter().map(AuthError::code).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        for code in codes {
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
        }
    }

    #[test]
    fn statuses() {
        for error in all() {
            let expected = match error {
                AuthError::MissingRole(_) => 403,
                AuthError::Config(_) => 500,
                _ => 401,
            };
            assert_eq!(error.http_status(), expected, "{error:?}");
        }
    }
}
