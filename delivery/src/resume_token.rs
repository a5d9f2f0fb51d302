//! Resume tokens: the SSE `id:` of every message, encoding the position of every topic of the connection.
//!
//! Layout (then base64url without padding, so a token is always one line of `[A-Za-z0-9_-]`):
//! `version u8 = 1 | count u8 | count × (topic tag u32 LE | epoch u64 LE | offset u64 LE) | crc32 u32 LE`.
//! The topic tag is the CRC-32 of the topic name: the token never echoes client input, and a token is matched to the
//! topics of the request that resumes with it (an EventSource reconnects with the same URL). A topic of the request
//! missing from the token starts at the live head; a tag in the token that matches no requested topic is ignored; a
//! tag found twice (two topics of one connection with the same CRC-32, or an altered token) names no position the
//! server can trust, and the topic is reset.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::DeliveryError;
use crate::history::Position;

const VERSION: u8 = 1;
const ENTRY_BYTES: usize = 4 + 8 + 8;
/// Longest token accepted for decoding (255 topics).
pub const MAX_TOKEN_CHARS: usize = 8_192;

/// The tag of a topic name inside a token.
pub fn topic_tag(topic: &str) -> u32 {
    crc32fast::hash(topic.as_bytes())
}

/// What a token says of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Not in the token: the topic was not part of the connection.
    Absent,
    At(Position),
    /// More than one entry with the topic's tag: the client held a position, but which one is unknown.
    Ambiguous,
}

/// The positions of a connection's topics, keyed by topic tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResumeToken {
    pub positions: Vec<(u32, Position)>,
}

impl ResumeToken {
    /// What the token records for `topic`.
    pub fn held(&self, topic: &str) -> Held {
        let tag = topic_tag(topic);
        let mut found = self.positions.iter().filter(|(t, _)| *t == tag);
        match (found.next(), found.next()) {
            (None, _) => Held::Absent,
            (Some((_, position)), None) => Held::At(*position),
            (Some(_), Some(_)) => Held::Ambiguous,
        }
    }

    pub fn encode(&self) -> String {
        encode_positions(self.positions.iter().copied())
    }

    pub fn decode(token: &str) -> Result<ResumeToken, DeliveryError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(DeliveryError::InvalidLastEventId);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| DeliveryError::InvalidLastEventId)?;
        let (body, crc) = bytes
            .split_last_chunk::<4>()
            .ok_or(DeliveryError::InvalidLastEventId)?;
        if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
            return Err(DeliveryError::InvalidLastEventId);
        }
        let [version, count, entries @ ..] = body else {
            return Err(DeliveryError::InvalidLastEventId);
        };
        if *version != VERSION || entries.len() != usize::from(*count) * ENTRY_BYTES {
            return Err(DeliveryError::InvalidLastEventId);
        }
        let positions = entries
            .chunks_exact(ENTRY_BYTES)
            .map(|chunk| {
                let (tag, rest) = chunk.split_at(4);
                let (epoch, offset) = rest.split_at(8);
                (
                    u32::from_le_bytes(tag.try_into().unwrap_or_default()),
                    Position {
                        epoch: u64::from_le_bytes(epoch.try_into().unwrap_or_default()),
                        offset: u64::from_le_bytes(offset.try_into().unwrap_or_default()),
                    },
                )
            })
            .collect();
        Ok(ResumeToken { positions })
    }
}

/// Encodes `(tag, position)` pairs (at most 255) without building a `ResumeToken`.
pub fn encode_positions(positions: impl ExactSizeIterator<Item = (u32, Position)>) -> String {
    let count = positions.len().min(255);
    let mut bytes = Vec::with_capacity(2 + count * ENTRY_BYTES + 4);
    bytes.push(VERSION);
    bytes.push(count as u8);
    for (tag, position) in positions.take(count) {
        bytes.extend_from_slice(&tag.to_le_bytes());
        bytes.extend_from_slice(&position.epoch.to_le_bytes());
        bytes.extend_from_slice(&position.offset.to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lookup() {
        let token = ResumeToken {
            positions: vec![
                (topic_tag("leaderboard.daily"), Position { epoch: 9, offset: 3 }),
                (topic_tag("user.u1.social"), Position { epoch: 9, offset: 0 }),
            ],
        };
        let encoded = token.encode();
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let decoded = ResumeToken::decode(&encoded).unwrap();
        assert_eq!(decoded, token);
        assert_eq!(
            decoded.held("leaderboard.daily"),
            Held::At(Position { epoch: 9, offset: 3 })
        );
        assert_eq!(decoded.held("trending.1h"), Held::Absent);
        let twice = ResumeToken {
            positions: vec![
                (topic_tag("user.u1.social"), Position { epoch: 9, offset: 3 }),
                (topic_tag("user.u1.social"), Position { epoch: 9, offset: 5 }),
            ],
        };
        assert_eq!(
            ResumeToken::decode(&twice.encode())
                .unwrap()
                .held("user.u1.social"),
            Held::Ambiguous
        );
    }

    #[test]
    fn garbage_is_rejected() {
        let valid = ResumeToken {
            positions: vec![(1, Position { epoch: 2, offset: 3 })],
        }
        .encode();
        let mut flipped = valid.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for garbage in [
            "",
            "garbage",
            "not base64 !!",
            "AAAA",
            flipped.as_str(),
            &"A".repeat(10_000),
        ] {
            assert_eq!(
                ResumeToken::decode(garbage),
                Err(DeliveryError::InvalidLastEventId),
                "{garbage:?}"
            );
        }
    }
}
