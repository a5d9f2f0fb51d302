//! Identifiers, names and other values that are written into events. Each is a small copyable value that
//! formats itself (`Display`) and serializes as a JSON string without intermediate allocation.

use std::fmt;

use chrono::{DateTime, Datelike, Timelike};

use serde::{Serialize, Serializer};

use super::tables;

macro_rules! serialize_as_display {
    ($($ty:ty),* $(,)?) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    )*};
}

/// `<prefix>-<n>`: users, shares, projects, bids, messages, rewards, prospects, testimonials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Id {
    pub(crate) prefix: &'static str,
    pub(crate) n: u64,
}

impl Id {
    pub(crate) fn user(n: u32) -> Id {
        Id {
            prefix: "user",
            n: u64::from(n),
        }
    }
    pub(crate) fn project(n: u32) -> Id {
        Id {
            prefix: "project",
            n: u64::from(n),
        }
    }
    pub(crate) fn testimonial(n: u32) -> Id {
        Id {
            prefix: "testimonial",
            n: u64::from(n),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.prefix, self.n)
    }
}

/// Envelope id: `evt-<seed>-<n>`, unique per seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventId {
    pub(crate) seed: u64,
    pub(crate) n: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "evt-{}-{}", self.seed, self.n)
    }
}

/// Referral code: `code-` and 8 characters of Crockford base 32, a bijective scramble of a 40-bit sequence
/// number (unique, but not guessable from its neighbours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodeId(pub(crate) u64);

const MASK40: u64 = (1 << 40) - 1;

impl CodeId {
    pub(crate) fn scramble(n: u64, salt: u64) -> CodeId {
        // Each step is a bijection on 40-bit values.
        let mut x = n & MASK40;
        x = x.wrapping_mul(0x9E37_79B9_7F4B) & MASK40;
        x ^= x >> 19;
        x = x.wrapping_mul(0xC2B2_AE3D_27D5) & MASK40;
        x ^= salt & MASK40;
        x ^= x >> 23;
        CodeId(x)
    }
}

impl fmt::Display for CodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut out = *b"code-00000000";
        for i in 0..8 {
            let digit = (self.0 >> (35 - 5 * i)) & 31;
            out[5 + i] = ALPHABET[digit as usize];
        }
        // Only ASCII was written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

/// Program id by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProgramId(pub(crate) u32);

impl fmt::Display for ProgramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match tables::PROGRAMS.get(self.0 as usize) {
            Some(name) => f.write_str(name),
            None => write!(f, "program-{}", self.0),
        }
    }
}

/// What a share points at; its id is the `contentId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentRef {
    Project(u32),
    Testimonial(u32),
    /// A user's profile: the content id is the user id.
    Profile(u32),
    /// A referral link: the content id is the code id.
    ReferralLink(CodeId),
    /// A contractor's or partner's portfolio.
    Portfolio(u32),
}

impl ContentRef {
    /// `contentType` of the catalogue.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            ContentRef::Project(_) => "project",
            ContentRef::Testimonial(_) => "testimonial",
            ContentRef::Profile(_) => "profile",
            ContentRef::ReferralLink(_) => "referral_link",
            ContentRef::Portfolio(_) => "portfolio",
        }
    }

    /// Index into per-content-type tables (same order as `content_type`).
    pub(crate) fn type_index(self) -> usize {
        match self {
            ContentRef::Project(_) => 0,
            ContentRef::Testimonial(_) => 1,
            ContentRef::Profile(_) => 2,
            ContentRef::ReferralLink(_) => 3,
            ContentRef::Portfolio(_) => 4,
        }
    }
}

impl fmt::Display for ContentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ContentRef::Project(n) => Id::project(n).fmt(f),
            ContentRef::Testimonial(n) => Id::testimonial(n).fmt(f),
            ContentRef::Profile(n) => Id::user(n).fmt(f),
            ContentRef::ReferralLink(code) => code.fmt(f),
            ContentRef::Portfolio(n) => write!(f, "portfolio-{n}"),
        }
    }
}

/// Role of a user on the marketplace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Homeowner,
    Contractor,
    Partner,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Homeowner => "homeowner",
            Role::Contractor => "contractor",
            Role::Partner => "partner",
        }
    }
}

/// A display name, derived from a per-person hash: homeowners `Maria G.` (or `Maria Garcia` after an
/// update), contractors `Garcia Renovations`, partners `Summit Lumber`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name {
    pub(crate) role: Role,
    pub(crate) hash: u64,
    pub(crate) variant: u8,
}

fn pick<'a>(table: &[&'a str], hash: u64, shift: u32) -> &'a str {
    let len = table.len().max(1) as u64;
    table.get(((hash >> shift) % len) as usize).copied().unwrap_or("")
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = pick(tables::FIRST_NAMES, self.hash, 0);
        let last = pick(tables::LAST_NAMES, self.hash, 16);
        match (self.role, self.variant % 2) {
            (Role::Homeowner, 0) => write!(f, "{first} {}.", last.chars().next().unwrap_or('X')),
            (Role::Homeowner, _) => write!(f, "{first} {last}"),
            (Role::Contractor, v) => {
                let suffix = pick(tables::CONTRACTOR_SUFFIXES, self.hash, 32);
                if v == 0 {
                    write!(f, "{last} {suffix}")
                } else {
                    write!(f, "{last} {suffix} LLC")
                }
            }
            (Role::Partner, _) => {
                let a = pick(tables::PARTNER_FIRST, self.hash, 32);
                let b = pick(tables::PARTNER_SECOND, self.hash, 40);
                write!(f, "{a} {b}")
            }
        }
    }
}

/// An event time (milliseconds since the Unix epoch) as RFC 3339 UTC with milliseconds:
/// `2026-01-01T00:00:00.000Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ts(pub(crate) i64);

impl Ts {
    /// The formatted time, computed once (the envelope `time` and the payload `timestamp` share it).
    pub(crate) fn text(self) -> TsText {
        let t = DateTime::from_timestamp_millis(self.0).unwrap_or(DateTime::UNIX_EPOCH);
        let mut buf = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, value: u32| {
            let mut v = value;
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        // The configuration keeps event times within years 1 to 9999.
        put(0, 4, t.year().clamp(0, 9999) as u32);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        put(20, 3, t.timestamp_subsec_millis().min(999));
        TsText(buf)
    }
}

/// A formatted [`Ts`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct TsText([u8; 24]);

impl TsText {
    fn as_str(&self) -> &str {
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

impl Serialize for TsText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

/// Landing page of a referral link click.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LandingPage {
    pub(crate) code: CodeId,
    pub(crate) utm_source: &'static str,
}

impl fmt::Display for LandingPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "https://instabids.example/join?ref={}&utm_source={}&utm_medium=referral",
            self.code, self.utm_source
        )
    }
}

serialize_as_display!(Id, EventId, CodeId, ProgramId, ContentRef, Name, Ts, LandingPage);

/// SplitMix64: a fast, well-mixed hash of a 64-bit value (names, addresses of simulated visitors).
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn formats() {
        assert_eq!(Id::user(12).to_string(), "user-12");
        assert_eq!(EventId { seed: 7, n: 3 }.to_string(), "evt-7-3");
        assert_eq!(ProgramId(0).to_string(), "program-standard");
        assert_eq!(ProgramId(9).to_string(), "program-9");
        assert_eq!(Ts(1_767_225_600_005).to_string(), "2026-01-01T00:00:00.005Z");
        assert_eq!(Ts(1_784_217_845_123).to_string(), "2026-07-16T16:04:05.123Z");
        assert_eq!(Ts(-62_135_596_800_000).to_string(), "0001-01-01T00:00:00.000Z");
        assert_eq!(ContentRef::Portfolio(4).to_string(), "portfolio-4");
        let code = CodeId::scramble(1, 99).to_string();
        assert!(code.starts_with("code-") && code.len() == 13, "{code}");
        assert_eq!(serde_json::to_string(&Id::project(3)).unwrap(), r#""project-3""#);
    }

    #[test]
    fn codes_are_unique() {
        let codes: BTreeSet<String> = (0..50_000)
            .map(|n| CodeId::scramble(n, 12345).to_string())
            .collect();
        assert_eq!(codes.len(), 50_000);
    }

    #[test]
    fn names_fit_catalogue_limits() {
        for role in [Role::Homeowner, Role::Contractor, Role::Partner] {
            for h in 0..2_000u64 {
                for variant in 0..2 {
                    let name = Name {
                        role,
                        hash: mix64(h),
                        variant,
                    }
                    .to_string();
                    assert!(!name.is_empty() && name.len() <= 128, "{name}");
                }
            }
        }
    }
}
