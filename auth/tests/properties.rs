//! Property tests: no input makes `verify` panic, no altered token verifies as something else, and minted
//! tokens round-trip.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use social_auth::{Minter, Verifier};

static VERIFIERS: LazyLock<[Verifier; 3]> = LazyLock::new(|| {
    [
        Verifier::new(&hs256()).unwrap(),
        Verifier::new(&rs256()).unwrap(),
        Verifier::new(&es256()).unwrap(),
    ]
});
static MINTER: LazyLock<Minter> = LazyLock::new(|| Minter::new(&hs256()).unwrap());
static VALID_TOKEN: LazyLock<String> = LazyLock::new(|| {
    MINTER
        .mint(
            "user-1",
            &strings(&["admin"]),
            &strings(&["p1"]),
            Duration::from_secs(600),
            NOW,
        )
        .unwrap()
});

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_=+/-]{0,64}"
}

/// base64url JSON that looks like a header or claims, with hostile values.
fn json_segment() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(serde_json::json!(null)),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::json!(["a", 1])),
        prop::sample::select(vec!["none", "HS256", "RS256", "ES256", "HS512", "PS256", "EdDSA"])
            .prop_map(serde_json::Value::from),
    ];
    let key = prop::sample::select(vec![
        "alg", "typ", "kid", "jwk", "crit", "sub", "exp", "nbf", "aud", "iss",
    ]);
    prop::collection::btree_map(key, value, 0..6).prop_map(|map| {
        use base64::Engine as _;
        let object: serde_json::Map<String, serde_json::Value> =
            map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::Value::Object(object).to_string())
    })
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        for verifier in VERIFIERS.iter() {
            prop_assert!(verifier.verify_at(&input, NOW).is_err());
        }
    }

    #[test]
    fn jwt_shaped_strings_never_panic(a in segment(), b in segment(), c in segment()) {
        let input = format!("{a}.{b}.{c}");
        for verifier in VERIFIERS.iter() {
            prop_assert!(verifier.verify_at(&input, NOW).is_err());
        }
    }

    #[test]
    fn hostile_json_never_panics(header in json_segment(), claims in json_segment(), sig in segment()) {
        let input = format!("{header}.{claims}.{sig}");
        for verifier in VERIFIERS.iter() {
            prop_assert!(verifier.verify_at(&input, NOW).is_err());
        }
    }

    #[test]
    fn an_altered_token_never_verifies_as_something_else(index in any::<prop::sample::Index>(), c in any::<char>()) {
        let original = VERIFIERS[0].verify_at(&VALID_TOKEN, NOW).unwrap();
        let mut altered: Vec<char> = VALID_TOKEN.chars().collect();
        altered[index.index(VALID_TOKEN.len())] = c;
        let altered: String = altered.into_iter().collect();
        if let Ok(claims) = VERIFIERS[0].verify_at(&altered, NOW) {
            prop_assert_eq!(claims, original);
        }
    }

    #[test]
    fn minted_tokens_round_trip(
        sub in "[A-Za-z0-9._:-]{1,128}",
        roles in prop::collection::vec("[a-z]{1,12}", 0..4),
        programs in prop::collection::vec("[A-Za-z0-9_-]{1,32}", 0..4),
        ttl in 1u64..1_000_000,
    ) {
        let token = MINTER.mint(&sub, &roles, &programs, Duration::from_secs(ttl), NOW).unwrap();
        let claims = VERIFIERS[0].verify_at(&token, NOW).unwrap();
        prop_assert_eq!((claims.sub, claims.roles, claims.programs), (sub, roles, programs));
        prop_assert_eq!(claims.exp, NOW + ttl);
    }
}
