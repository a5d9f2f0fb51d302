//! RFC 7239 `Forwarded` lines: the address of each element's `for=` parameter.
//!
//! A trusted proxy appends its element to the line the client sent (`<client's elements>, for=<peer it saw>`), so
//! the elements are split off from the right: whatever the client wrote before (an unbalanced quote, an escaped
//! quote, a comma inside quotes), the proxy's own elements come out as the proxy wrote them. Each element is then
//! read strictly (`name=token` or `name="quoted \" string"` pairs separated by `;`); an element that does not
//! follow the syntax, has no `for` or two of them, or names no address (`unknown`, an obfuscated `_id`) is a hop
//! without an address, which ends the caller's walk.

use std::net::{IpAddr, Ipv6Addr};

/// The hops of one line, left to right: each element's `for=` address, `None` for an element without a usable
/// one. Empty elements (`a,,b`) are not hops.
pub(crate) fn hops(line: &str) -> Vec<Option<IpAddr>> {
    let mut hops: Vec<Option<IpAddr>> = elements_right_to_left(line)
        .into_iter()
        .filter(|(element, _)| !element.trim().is_empty())
        .map(|(element, balanced)| if balanced { for_address(element) } else { None })
        .collect();
    hops.reverse();
    hops
}

/// The elements of `line`, right to left, each with whether its quotes balance. A quote preceded by an odd
/// number of backslashes is escaped. Only ASCII bytes are compared, so every cut is at a character boundary.
fn elements_right_to_left(line: &str) -> Vec<(&str, bool)> {
    let bytes = line.as_bytes();
    let mut elements = Vec::new();
    let mut quoted = false;
    let mut end = bytes.len();
    for i in (0..bytes.len()).rev() {
        match bytes[i] {
            b'"' if !escaped(bytes, i) => quoted = !quoted,
            b',' if !quoted => {
                elements.push((&line[i + 1..end], true));
                end = i;
            }
            _ => {}
        }
    }
    // A quote still open at the start of the line: the leftmost element is not well formed.
    elements.push((&line[..end], !quoted));
    elements
}

/// Whether the byte at `i` is preceded by an odd number of backslashes.
fn escaped(bytes: &[u8], i: usize) -> bool {
    bytes[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1
}

/// The address of `element`'s single `for` parameter.
fn for_address(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for (name, value) in pairs(element)? {
        if name.eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    node_address(&found?)
}

/// The `name=value` pairs of an element, values unquoted; `None` when it does not follow the syntax.
fn pairs(element: &str) -> Option<Vec<(&str, String)>> {
    let mut pairs = Vec::new();
    let mut rest = element.trim_start();
    loop {
        let (name, after) = rest.split_once('=')?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return None;
        }
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => quoted_string(quoted)?,
            None => {
                let end = after.find(';').unwrap_or(after.len());
                let token = after[..end].trim_end();
                if token.is_empty() || token.contains(['"', ' ', ',']) {
                    return None;
                }
                (token.to_owned(), &after[end..])
            }
        };
        pairs.push((name, value));
        let remainder = remainder.trim_start();
        match remainder.strip_prefix(';') {
            Some(next) => rest = next.trim_start(),
            None if remainder.is_empty() => return Some(pairs),
            None => return None,
        }
    }
}

/// The content of a quoted string whose opening quote is already consumed (escapes resolved), and what follows
/// its closing quote.
fn quoted_string(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '"' => return Some((value, &text[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

/// A node (`for` value): `192.0.2.60`, `192.0.2.60:4711`, `[2001:db8::17]`, `[2001:db8::17]:4711`, with the port
/// possibly obfuscated (`:_p`). `unknown` and obfuscated identifiers name no address.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(bracketed) = node.strip_prefix('[') {
        let (v6, port) = bracketed.split_once(']')?;
        if !(port.is_empty() || valid_port(port.strip_prefix(':')?)) {
            return None;
        }
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let host = match node.split_once(':') {
        Some((host, port)) if valid_port(port) => host,
        Some(_) => return None,
        None => node,
    };
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// A port: digits, or an obfuscated one (`_` followed by letters, digits, `.`, `_`, `-`).
fn valid_port(port: &str) -> bool {
    match port.strip_prefix('_') {
        Some(obfuscated) => {
            !obfuscated.is_empty()
                && obfuscated
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
        None => port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn elements_and_nodes_of_rfc_7239() {
        assert_eq!(
            hops("for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\""),
            vec![ip("192.0.2.60"), ip("2001:db8:cafe::17")]
        );
        assert_eq!(
            hops("for = 192.0.2.43:_p ; host=\"a,b;c\""),
            vec![ip("192.0.2.43")]
        );
        assert_eq!(hops("for=\"[2001:db8::5]\""), vec![ip("2001:db8::5")]);
        assert_eq!(
            hops("for=\"192.0.2.1:8080\",, for=198.51.100.2"),
            vec![ip("192.0.2.1"), ip("198.51.100.2")]
        );
        // Elements without a usable address are hops without one.
        for element in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=\"[2001:db8::1\"",
            "for=192.0.2.1:99999",
            "for=2001:db8::1",
            "for=192.0.2.1;for=192.0.2.2",
            "for=192.0.2.1 junk",
            "for=\"192.0.2.1\"junk",
            "=192.0.2.1",
        ] {
            assert_eq!(hops(element), vec![None], "{element}");
        }
    }

    /// Whatever a client writes before the element its trusted proxy appends, that element comes out as written.
    #[test]
    fn the_proxys_element_parses_whatever_the_client_wrote_before_it() {
        for client in [
            "for=6.6.6.6;x=\"",
            "for=\"6.6.6.6\";x=\"a\\\"b\"",
            "for=\"x",
            "for=\"6.6.6.6\\",
            "for=6.6.6.6;x=\"a,b\"",
            "\u{fffd}for=6.6.6.6",
            "",
        ] {
            let line = format!("{client}, for=203.0.113.77");
            let got = hops(&line);
            assert_eq!(got.last(), Some(&ip("203.0.113.77")), "{line}: {got:?}");
        }
        assert_eq!(
            hops("for=\"6.6.6.6\";x=\"a\\\"b\", for=203.0.113.77"),
            vec![ip("6.6.6.6"), ip("203.0.113.77")],
            "an escaped quote inside a quoted value"
        );
        assert_eq!(
            hops("for=6.6.6.6;x=\", for=203.0.113.77"),
            vec![None, ip("203.0.113.77")]
        );
    }
}
