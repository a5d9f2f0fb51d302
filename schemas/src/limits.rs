//! Size limits applied by [`crate::parse_event`].

/// Default maximum size of one event's JSON, in bytes (64 KiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;
/// Default maximum length, in characters, of strings whose length `docs/EVENTS.md` does not list.
pub const DEFAULT_MAX_TEXT_LEN: usize = 2000;

/// Limits for [`crate::parse_event`]. Lengths listed in `docs/EVENTS.md` for particular fields (`displayName` 128,
/// `title` 200, ...) are fixed; `max_text_len` applies to every other free-text string (extension attributes,
/// open `metadata` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of one event's JSON in bytes; larger input is rejected with `event_too_large` before parsing.
    pub max_event_bytes: usize,
    /// Maximum length in characters of strings whose length is not listed in the catalogue.
    pub max_text_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_text_len: DEFAULT_MAX_TEXT_LEN,
        }
    }
}
