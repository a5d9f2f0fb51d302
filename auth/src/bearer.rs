//! Extracting the token from an `Authorization` header value.

/// The token of an `Authorization: Bearer <token>` value: the scheme is matched without regard to ASCII
/// case, surrounding whitespace is trimmed, and `None` is returned for another scheme, an empty token or a
/// token containing whitespace.
pub fn bearer_token(authorization_header_value: &str) -> Option<&str> {
    let (scheme, token) = authorization_header_value
        .trim()
        .split_once(|c: char| c.is_ascii_whitespace())?;
    let token = token.trim();
    let well_formed = !token.is_empty() && !token.contains(|c: char| c.is_ascii_whitespace());
    (scheme.eq_ignore_ascii_case("bearer") && well_formed).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn accepts_bearer_in_any_case() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("  Bearer \t abc  "), Some("abc"));
    }

    #[test]
    fn rejects_everything_else() {
        for value in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer    ",
            "Basic abc",
            "Bearerabc",
            "Bearer a b",
            "abc",
        ] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
