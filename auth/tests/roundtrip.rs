//! Tokens minted with each algorithm verify, with the configured checks, and configuration errors are caught
//! when the verifier or minter is built.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use social_auth::{AuthConfig, AuthError, JwtAlgorithm, Minter, Verifier};

fn round_trip(config: &AuthConfig) {
    let roles = strings(&["admin", "service"]);
    let programs = strings(&["prog-1", "prog-2"]);
    let token = Minter::new(config)
        .unwrap()
        .mint("user-42", &roles, &programs, Duration::from_secs(600), NOW)
        .unwrap();
    let claims = Verifier::new(config)
        .unwrap()
        .verify_at(&token, NOW + 10)
        .unwrap();
    assert_eq!(claims.sub, "user-42");
    assert_eq!((claims.iat, claims.exp, claims.nbf), (Some(NOW), NOW + 600, None));
    assert_eq!((claims.roles, claims.programs), (roles, programs));
}

#[test]
fn hs256_round_trip() {
    round_trip(&hs256());
}

#[test]
fn rs256_round_trip() {
    round_trip(&rs256());
}

#[test]
fn es256_round_trip() {
    round_trip(&es256());
}

#[test]
fn verify_uses_the_system_clock() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let token = mint(&hs256(), "user-1", now, 3600);
    assert_eq!(
        Verifier::new(&hs256()).unwrap().verify(&token).unwrap().sub,
        "user-1"
    );
    let expired = mint(&hs256(), "user-1", now - 7200, 3600);
    assert_eq!(
        Verifier::new(&hs256()).unwrap().verify(&expired),
        Err(AuthError::Expired)
    );
}

#[test]
fn minted_tokens_carry_configured_issuer_and_audience() {
    let config = AuthConfig {
        issuer: Some("https://auth.test".into()),
        audience: Some("social-realtime".into()),
        ..es256()
    };
    let token = mint(&config, "user-1", NOW, 60);
    let claims = Verifier::new(&config).unwrap().verify_at(&token, NOW).unwrap();
    assert_eq!(claims.iss.as_deref(), Some("https://auth.test"));
    assert_eq!(claims.aud, Some(serde_json::json!("social-realtime")));
}

#[test]
fn minting_rejects_empty_subject_and_zero_ttl() {
    let minter = Minter::new(&hs256()).unwrap();
    let mint = |sub: &str, ttl| minter.mint(sub, &[], &[], ttl, NOW).map_err(|e| e.code());
    assert_eq!(mint("", Duration::from_secs(60)), Err("auth_misconfigured"));
    assert_eq!(mint("u", Duration::from_millis(999)), Err("auth_misconfigured"));
}

fn verifier_error(config: AuthConfig) -> AuthError {
    Verifier::new(&config).unwrap_err()
}

fn minter_error(config: AuthConfig) -> AuthError {
    Minter::new(&config).unwrap_err()
}

#[test]
fn unusable_verifier_configurations_are_rejected() {
    let cases = [
        ("no secret", AuthConfig::default()),
        ("short secret", AuthConfig::hs256("too-short")),
        (
            "no public key",
            AuthConfig {
                public_key_pem: None,
                ..rs256()
            },
        ),
        (
            "private key as public",
            pem_config(JwtAlgorithm::RS256, RSA_PRIVATE, RSA_PRIVATE),
        ),
        (
            "EC key for RS256",
            pem_config(JwtAlgorithm::RS256, EC_PUBLIC, RSA_PRIVATE),
        ),
        (
            "RSA key for ES256",
            pem_config(JwtAlgorithm::ES256, RSA_PUBLIC, EC_PRIVATE),
        ),
        (
            "P-384 key for ES256",
            pem_config(JwtAlgorithm::ES256, EC_P384_PUBLIC, EC_PRIVATE),
        ),
        ("not PEM", pem_config(JwtAlgorithm::RS256, "hello", RSA_PRIVATE)),
        (
            "secret with RS256",
            AuthConfig {
                secret: Some(SECRET.into()),
                ..rs256()
            },
        ),
        (
            "key with HS256",
            AuthConfig {
                public_key_pem: Some(RSA_PUBLIC.into()),
                ..hs256()
            },
        ),
        (
            "huge leeway",
            AuthConfig {
                leeway_secs: 3600,
                ..hs256()
            },
        ),
    ];
    for (name, config) in cases {
        let error = verifier_error(config);
        assert_eq!(
            (error.code(), error.http_status()),
            ("auth_misconfigured", 500),
            "{name}"
        );
        for secret in [SECRET, RSA_PRIVATE, RSA_PUBLIC, EC_PRIVATE] {
            assert!(!error.to_string().contains(secret.trim()), "{name}: {error}");
        }
    }
}

#[test]
fn unusable_minter_configurations_are_rejected() {
    let cases = [
        (
            "no private key",
            AuthConfig {
                private_key_pem: None,
                ..es256()
            },
        ),
        (
            "public key as private",
            pem_config(JwtAlgorithm::RS256, RSA_PUBLIC, RSA_PUBLIC),
        ),
        (
            "RSA key for ES256",
            pem_config(JwtAlgorithm::ES256, EC_PUBLIC, RSA_PRIVATE),
        ),
        (
            "EC key for RS256",
            pem_config(JwtAlgorithm::RS256, RSA_PUBLIC, EC_PRIVATE),
        ),
        ("short secret", AuthConfig::hs256("x")),
    ];
    for (name, config) in cases {
        assert_eq!(minter_error(config).code(), "auth_misconfigured", "{name}");
    }
}

#[test]
fn a_verifier_needs_no_private_key() {
    let config = AuthConfig {
        private_key_pem: None,
        ..rs256()
    };
    let token = mint(&rs256(), "user-1", NOW, 60);
    assert!(Verifier::new(&config).unwrap().verify_at(&token, NOW).is_ok());
}

#[test]
fn debug_output_holds_no_key_material() {
    let verifier = Verifier::new(&hs256()).unwrap();
    let minter = Minter::new(&rs256()).unwrap();
    let printed = format!("{:?} {:?} {:?} {:?}", hs256(), rs256(), verifier, minter);
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(!printed.contains("BEGIN"), "{printed}");
}

#[test]
fn verifier_and_minter_can_be_shared_across_tasks() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Verifier>();
    assert_send_sync::<Minter>();
    assert_send_sync::<AuthError>();
}
