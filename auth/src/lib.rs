//! JWT verification and minting shared by ingest and delivery.
//!
//! - `config.rs`: [`AuthConfig`] (serde, `deny_unknown_fields`) and [`JwtAlgorithm`] (`HS256`, `RS256`,
//!   `ES256`). `Debug` redacts the secret and keys.
//! - `verify.rs`: [`Verifier`], built once from the configuration and used per request.
//! - `claims.rs`: [`Claims`] (`sub`, `exp`, `nbf`, `iat`, `iss`, `aud`, `programs`, `roles`) and role helpers.
//! - `mint.rs`: [`Minter`], for the `token` subcommand and tests.
//! - `bearer.rs`: [`bearer_token`], the token of an `Authorization: Bearer ...` value.
//! - `error.rs`: [`AuthError`], with a stable [`code`](AuthError::code) and
//!   [`http_status`](AuthError::http_status) for the `{"error":{"code","message"}}` answers.
//!
//! Rules a verifier enforces:
//! - The algorithm comes from the configuration only. A token whose header names any other algorithm
//!   (`none`, or `HS256` presented to an `RS256` verifier, the key-confusion attack) fails with
//!   [`AuthError::AlgorithmNotAllowed`].
//! - `exp` is required; the token is rejected on or after `exp + leeway` and before `nbf - leeway`.
//! - `iss` and `aud` are required and checked only when `issuer` / `audience` are configured.
//! - `sub` must be non-empty; tokens over [`MAX_TOKEN_BYTES`] are rejected unread.
//! - HS256 secrets must be at least [`MIN_HS256_SECRET_BYTES`] bytes; settings of another algorithm (a key
//!   with HS256, a secret with RS256/ES256) are configuration errors.
//!
//! ```
//! use std::time::Duration;
//! use social_auth::{AuthConfig, Minter, Verifier};
//!
//! let config = AuthConfig::hs256("an-example-secret-of-at-least-32-bytes");
//! let token = Minter::new(&config)?.mint("user-1", &["admin".into()], &[], Duration::from_secs(60), 1_000)?;
//! let claims = Verifier::new(&config)?.verify_at(&token, 1_010)?;
//! assert!(claims.is_admin());
//! # Ok::<(), social_auth::AuthError>(())
//! ```

mod bearer;
mod claims;
mod config;
mod error;
mod mint;
mod verify;

pub use bearer::bearer_token;
pub use claims::{Claims, ROLE_ADMIN, ROLE_SERVICE};
pub use config::{AuthConfig, DEFAULT_LEEWAY_SECS, JwtAlgorithm, MAX_LEEWAY_SECS, MIN_HS256_SECRET_BYTES};
pub use error::AuthError;
pub use mint::Minter;
pub use verify::{MAX_TOKEN_BYTES, Verifier};
