//! Every way a token must be refused, and the error it is refused with.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use social_auth::{AuthConfig, AuthError, JwtAlgorithm, MAX_TOKEN_BYTES, Verifier};

fn verify(config: &AuthConfig, token: &str) -> Result<social_auth::Claims, AuthError> {
    Verifier::new(config).unwrap().verify_at(token, NOW)
}

#[test]
fn expiry_respects_the_leeway() {
    let config = hs256(); // leeway 30 s
    assert_eq!(
        verify(&config, &mint(&config, "u", NOW - 3600, 60)),
        Err(AuthError::Expired)
    );
    // exp = NOW - 10: expired, but within the leeway.
    assert!(verify(&config, &mint(&config, "u", NOW - 70, 60)).is_ok());
    // exp = NOW - 30: the leeway is used up.
    assert_eq!(
        verify(&config, &mint(&config, "u", NOW - 90, 60)),
        Err(AuthError::Expired)
    );
    let strict = AuthConfig {
        leeway_secs: 0,
        ..hs256()
    };
    assert_eq!(
        verify(&strict, &mint(&strict, "u", NOW - 70, 60)),
        Err(AuthError::Expired)
    );
}

#[test]
fn not_before_respects_the_leeway() {
    let future = json!({ "sub": "u", "exp": NOW + 3600, "nbf": NOW + 120 });
    let error = verify(&hs256(), &sign_hs256(&future, SECRET.as_bytes())).unwrap_err();
    assert_eq!((error.code(), error.http_status()), ("token_not_yet_valid", 401));
    let soon = json!({ "sub": "u", "exp": NOW + 3600, "nbf": NOW + 20 });
    assert!(verify(&hs256(), &sign_hs256(&soon, SECRET.as_bytes())).is_ok());
}

#[test]
fn wrong_key_is_a_bad_signature() {
    let other_secret = hs256_with("another-test-only-secret-0123456789abcdef");
    assert_eq!(
        verify(&hs256(), &mint(&other_secret, "u", NOW, 60)),
        Err(AuthError::BadSignature)
    );
    let other_rsa = pem_config(JwtAlgorithm::RS256, RSA_PUBLIC, RSA_OTHER_PRIVATE);
    assert_eq!(
        verify(&rs256(), &mint(&other_rsa, "u", NOW, 60)),
        Err(AuthError::BadSignature)
    );
    let other_ec = pem_config(JwtAlgorithm::ES256, EC_PUBLIC, EC_OTHER_PRIVATE);
    assert_eq!(
        verify(&es256(), &mint(&other_ec, "u", NOW, 60)),
        Err(AuthError::BadSignature)
    );
}

fn hs256_with(secret: &str) -> AuthConfig {
    AuthConfig::hs256(secret)
}

#[test]
fn tampered_claims_are_a_bad_signature() {
    let token = mint(&hs256(), "user-1", NOW, 60);
    let forged = sign_hs256(&valid_claims(), b"attacker-secret");
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = forged.split('.').nth(1).unwrap();
    assert_eq!(verify(&hs256(), &parts.join(".")), Err(AuthError::BadSignature));
}

#[test]
fn alg_none_is_not_allowed() {
    let claims = valid_claims();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = craft(&json!({ "alg": alg, "typ": "JWT" }), &claims, b"");
        assert!(token.ends_with('.'), "empty signature");
        for config in [hs256(), rs256(), es256()] {
            let error = verify(&config, &token).unwrap_err();
            assert_eq!(
                (error.code(), error.http_status()),
                ("algorithm_not_allowed", 401),
                "{alg}"
            );
        }
    }
    // The same with a signature attached, or with the signature part missing, is refused too.
    let with_signature = craft(&json!({ "alg": "none" }), &claims, b"sig");
    assert_eq!(
        verify(&hs256(), &with_signature),
        Err(AuthError::AlgorithmNotAllowed)
    );
    let two_parts = with_signature.rsplit_once('.').unwrap().0;
    assert!(verify(&hs256(), two_parts).is_err());
}

#[test]
fn hs256_signed_with_the_public_key_is_refused_by_rs256_and_es256_verifiers() {
    // The key-confusion attack: sign HS256 with the (public) verification key as the HMAC secret.
    for (config, public) in [(rs256(), RSA_PUBLIC), (es256(), EC_PUBLIC)] {
        let token = sign_hs256(&valid_claims(), public.as_bytes());
        assert_eq!(verify(&config, &token), Err(AuthError::AlgorithmNotAllowed));
        // Also with the header claiming the asymmetric algorithm over the HMAC signature.
        let header = json!({ "alg": config.algorithm.as_str(), "typ": "JWT" });
        let unsigned = craft(&header, &valid_claims(), b"");
        let message = unsigned.trim_end_matches('.');
        let hmac = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(public.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        let relabelled = format!("{message}.{hmac}");
        assert_eq!(verify(&config, &relabelled), Err(AuthError::BadSignature));
    }
}

#[test]
fn other_algorithms_are_refused() {
    let rs_token = mint(&rs256(), "u", NOW, 60);
    let es_token = mint(&es256(), "u", NOW, 60);
    let hs_token = mint(&hs256(), "u", NOW, 60);
    assert_eq!(verify(&es256(), &rs_token), Err(AuthError::AlgorithmNotAllowed));
    assert_eq!(verify(&rs256(), &es_token), Err(AuthError::AlgorithmNotAllowed));
    assert_eq!(verify(&hs256(), &rs_token), Err(AuthError::AlgorithmNotAllowed));
    assert_eq!(verify(&es256(), &hs_token), Err(AuthError::AlgorithmNotAllowed));
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS512),
        &valid_claims(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(verify(&hs256(), &hs512), Err(AuthError::AlgorithmNotAllowed));
}

fn with_iss_aud() -> AuthConfig {
    AuthConfig {
        issuer: Some("https://auth.test".into()),
        audience: Some("social-realtime".into()),
        ..hs256()
    }
}

fn signed(claims: serde_json::Value) -> String {
    sign_hs256(&claims, SECRET.as_bytes())
}

#[test]
fn issuer_is_checked_when_configured() {
    let exp = NOW + 60;
    let config = with_iss_aud();
    let good =
        signed(json!({ "sub": "u", "exp": exp, "iss": "https://auth.test", "aud": "social-realtime" }));
    assert!(verify(&config, &good).is_ok());
    let wrong =
        signed(json!({ "sub": "u", "exp": exp, "iss": "https://evil.test", "aud": "social-realtime" }));
    assert_eq!(verify(&config, &wrong), Err(AuthError::BadIssuer));
    let missing = signed(json!({ "sub": "u", "exp": exp, "aud": "social-realtime" }));
    assert_eq!(verify(&config, &missing), Err(AuthError::BadIssuer));
    // Not configured: any issuer passes.
    assert!(verify(&hs256(), &wrong).is_ok());
}

#[test]
fn audience_is_checked_when_configured() {
    let exp = NOW + 60;
    let config = with_iss_aud();
    let iss = "https://auth.test";
    let in_array = signed(json!({ "sub": "u", "exp": exp, "iss": iss, "aud": ["other", "social-realtime"] }));
    assert!(verify(&config, &in_array).is_ok());
    let wrong = signed(json!({ "sub": "u", "exp": exp, "iss": iss, "aud": "other" }));
    let error = verify(&config, &wrong).unwrap_err();
    assert_eq!((error.code(), error.http_status()), ("invalid_audience", 401));
    let missing = signed(json!({ "sub": "u", "exp": exp, "iss": iss }));
    assert_eq!(verify(&config, &missing), Err(AuthError::BadAudience));
    // Not configured: any audience passes.
    assert!(verify(&hs256(), &wrong).is_ok());
}

#[test]
fn claims_of_the_wrong_shape_are_malformed() {
    let exp = NOW + 60;
    for claims in [
        json!({ "sub": "u" }),
        json!({ "sub": "u", "exp": "tomorrow" }),
        json!({ "sub": "u", "exp": -1 }),
        json!({ "sub": "", "exp": exp }),
        json!({ "exp": exp }),
        json!({ "sub": "u", "exp": exp, "roles": "admin" }),
        json!({ "sub": "u", "exp": exp, "programs": [1, 2] }),
        json!(["not", "an", "object"]),
    ] {
        assert_eq!(
            verify(&hs256(), &signed(claims.clone())),
            Err(AuthError::Malformed),
            "{claims}"
        );
    }
}

#[test]
fn garbage_is_malformed_or_missing() {
    let config = hs256();
    for blank in ["", "   ", "\t\n"] {
        let error = verify(&config, blank).unwrap_err();
        assert_eq!((error.code(), error.http_status()), ("missing_token", 401));
    }
    let too_long = format!("{}.e30.", "a".repeat(MAX_TOKEN_BYTES));
    for garbage in [
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "...",
        "Bearer abc.def.ghi",
        "eyJ.eyJ.eyJ",
        "💥.💥.💥",
        "e30.e30.",
        "bnVsbA.bnVsbA.",
        too_long.as_str(),
    ] {
        let error = verify(&config, garbage).unwrap_err();
        assert_eq!(error, AuthError::Malformed, "{garbage:.40}");
    }
}

#[test]
fn error_messages_never_contain_the_token_or_secret() {
    let token = mint(&hs256(), "user-1", NOW - 3600, 60);
    let tampered = format!("{token}x");
    for (config, token) in [(hs256(), &token), (hs256(), &tampered), (rs256(), &token)] {
        let message = verify(&config, token).unwrap_err().to_string();
        assert!(
            !message.contains(token.as_str()) && !message.contains(SECRET),
            "{message}"
        );
        for part in token.split('.') {
            assert!(part.is_empty() || !message.contains(part), "{message}");
        }
    }
}
