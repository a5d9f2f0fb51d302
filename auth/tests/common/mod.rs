//! Helpers shared by the integration tests. Keys under `tests/keys/` are test-only.
#![allow(dead_code, clippy::unwrap_used)] // not every test crate uses every helper; unwrap = failed test

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use social_auth::{AuthConfig, JwtAlgorithm, Minter};

/// A fixed "now" so no test depends on the wall clock.
pub(crate) const NOW: u64 = 1_750_000_000;
pub(crate) const SECRET: &str = "test-only-hs256-secret-0123456789abcdef";

pub(crate) const RSA_PRIVATE: &str = include_str!("../keys/rsa_private.pem");
pub(crate) const RSA_PUBLIC: &str = include_str!("../keys/rsa_public.pem");
pub(crate) const RSA_OTHER_PRIVATE: &str = include_str!("../keys/rsa_other_private.pem");
pub(crate) const EC_PRIVATE: &str = include_str!("../keys/ec_private.pem");
pub(crate) const EC_PUBLIC: &str = include_str!("../keys/ec_public.pem");
pub(crate) const EC_OTHER_PRIVATE: &str = include_str!("../keys/ec_other_private.pem");
pub(crate) const EC_P384_PUBLIC: &str = include_str!("../keys/ec_p384_public.pem");

pub(crate) fn hs256() -> AuthConfig {
    AuthConfig::hs256(SECRET)
}

pub(crate) fn rs256() -> AuthConfig {
    pem_config(JwtAlgorithm::RS256, RSA_PUBLIC, RSA_PRIVATE)
}

pub(crate) fn es256() -> AuthConfig {
    pem_config(JwtAlgorithm::ES256, EC_PUBLIC, EC_PRIVATE)
}

pub(crate) fn pem_config(algorithm: JwtAlgorithm, public: &str, private: &str) -> AuthConfig {
    AuthConfig {
        algorithm,
        public_key_pem: Some(public.to_owned()),
        private_key_pem: Some(private.to_owned()),
        ..AuthConfig::default()
    }
}

pub(crate) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// A token for `sub` minted with `config`, issued at `iat` and valid for `ttl_secs`.
pub(crate) fn mint(config: &AuthConfig, sub: &str, iat: u64, ttl_secs: u64) -> String {
    Minter::new(config)
        .unwrap()
        .mint(sub, &[], &[], Duration::from_secs(ttl_secs), iat)
        .unwrap()
}

/// An HS256 token over arbitrary JSON claims, signed with `secret`.
pub(crate) fn sign_hs256(claims: &serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// A token assembled by hand: base64url(header) . base64url(claims) . base64url(signature).
pub(crate) fn craft(header: &serde_json::Value, claims: &serde_json::Value, signature: &[u8]) -> String {
    let encode = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        encode(header.to_string().as_bytes()),
        encode(claims.to_string().as_bytes()),
        encode(signature)
    )
}

pub(crate) fn valid_claims() -> serde_json::Value {
    serde_json::json!({ "sub": "user-1", "exp": NOW + 3600, "iat": NOW, "roles": ["admin"] })
}
