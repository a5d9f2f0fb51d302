//! [`Key`]: an identifier held by value when it is short (up to 22 bytes, which covers the generated and typical
//! ids), on the heap otherwise. Hash tables keyed by `Key` compare keys without following a pointer (the cache
//! miss that dominated lookups with `String` keys) and allocate nothing per short key.
//!
//! Lookups go through the bytes: `map.get(id.as_bytes())` (`Key: Borrow<[u8]>`, hashed like `[u8]`). Serialized as
//! a string, so state that held `String` keys keeps its checkpoint form.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const INLINE: usize = 22;

#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Key {
    pub fn new(id: &str) -> Self {
        let src = id.as_bytes();
        match (u8::try_from(src.len()), src.len() <= INLINE) {
            (Ok(len), true) => {
                let mut bytes = [0; INLINE];
                if let Some(dst) = bytes.get_mut(..src.len()) {
                    dst.copy_from_slice(src);
                }
                Key::Inline { len, bytes }
            }
            _ => Key::Heap(id.into()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Key::Heap(s) => s.as_bytes(),
        }
    }

    /// The identifier (built from a `&str`, so always UTF-8).
    pub fn as_str(&self) -> &str {
        match self {
            Key::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Key::Heap(s) => s,
        }
    }
}

impl From<&str> for Key {
    fn from(id: &str) -> Self {
        Key::new(id)
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// Byte order, which is `str` order.
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Key::new(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashMap;

    #[test]
    fn inline_and_heap_keys_behave_like_strings() {
        let long = "x".repeat(40);
        let mut map: FxHashMap<Key, u32> = FxHashMap::default();
        for (i, id) in ["", "a", "user-123", "exactly-22-bytes-long!", long.as_str()]
            .iter()
            .enumerate()
        {
            let key = Key::new(id);
            assert_eq!(key.as_str(), *id);
            map.insert(key, i as u32);
        }
        assert!(matches!(Key::new("exactly-22-bytes-long!"), Key::Inline { .. }));
        assert!(matches!(Key::new(&long), Key::Heap(_)));
        assert_eq!(map.get(long.as_bytes()), Some(&4));
        assert_eq!(map.get("user-123".as_bytes()), Some(&2));
        assert_eq!(map.get("user-12".as_bytes()), None);
        let mut keys: Vec<Key> = ["b", "a", "ab", &long].iter().map(|s| Key::new(s)).collect();
        keys.sort();
        let sorted: Vec<&str> = keys.iter().map(Key::as_str).collect();
        let mut expected = vec!["b", "a", "ab", long.as_str()];
        expected.sort();
        assert_eq!(sorted, expected);
        let json = serde_json::to_string(&map).unwrap_or_default();
        let back: FxHashMap<Key, u32> = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, map);
    }
}
