//! From command-line auth options to the shared auth configuration.

use anyhow::Context;
use social_auth::{AuthConfig, JwtAlgorithm};

use crate::cli::{Algorithm, AuthArgs};

/// HS256 secret used by `run --demo` (and `token --demo`) when no secret is configured. Never use it elsewhere:
/// anyone can mint tokens with it.
pub const DEMO_SECRET: &str = "social-realtime-demo-secret-not-for-production";

/// Builds the auth configuration; `demo` allows falling back to [`DEMO_SECRET`] for HS256.
pub fn auth_config(args: &AuthArgs, demo: bool) -> anyhow::Result<AuthConfig> {
    let read_pem = |path: &Option<std::path::PathBuf>| -> anyhow::Result<Option<String>> {
        path.as_ref()
            .map(|path| std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display())))
            .transpose()
    };
    let algorithm = match args.jwt_algorithm {
        Algorithm::Hs256 => JwtAlgorithm::HS256,
        Algorithm::Rs256 => JwtAlgorithm::RS256,
        Algorithm::Es256 => JwtAlgorithm::ES256,
    };
    let mut secret = args.jwt_secret.clone().filter(|secret| !secret.is_empty());
    if algorithm == JwtAlgorithm::HS256 && secret.is_none() {
        if !demo {
            anyhow::bail!(
                "no JWT secret: set --jwt-secret / JWT_SECRET (or use RS256/ES256 with --jwt-public-key-file); \
                 `run --demo` alone falls back to a public demo secret"
            );
        }
        tracing::warn!("no JWT secret configured: using the public demo secret; do not expose this server");
        secret = Some(DEMO_SECRET.to_string());
    }
    Ok(AuthConfig {
        algorithm,
        secret,
        public_key_pem: read_pem(&args.jwt_public_key_file)?,
        private_key_pem: read_pem(&args.jwt_private_key_file)?,
        issuer: args.jwt_issuer.clone(),
        audience: args.jwt_audience.clone(),
        leeway_secs: args.jwt_leeway_secs,
    })
}
