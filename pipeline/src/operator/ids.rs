//! Deterministic message ids: a 128-bit hash of the operator, the key, the window or tick and the inputs that
//! produced the message. A replay of the same input produces the same ids, so consumers can drop duplicates.

/// Builds an id field by field; fields are length-delimited so `("ab","c")` and `("a","bc")` differ.
#[derive(Debug, Clone, Copy)]
pub struct MessageId {
    a: u64,
    b: u64,
}

const PRIME: u64 = 0x0100_0000_01b3;

impl MessageId {
    /// Starts an id for `operator` (a fixed name such as `counters`).
    pub fn new(operator: &str) -> Self {
        MessageId {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x6c62_272e_07bb_0142,
        }
        .str(operator)
    }

    fn byte(&mut self, byte: u8) {
        self.a = (self.a ^ u64::from(byte)).wrapping_mul(PRIME);
        self.b = (self.b ^ u64::from(byte)).wrapping_mul(PRIME).rotate_left(5);
    }

    pub fn str(mut self, s: &str) -> Self {
        for byte in (s.len() as u64).to_le_bytes() {
            self.byte(byte);
        }
        for byte in s.bytes() {
            self.byte(byte);
        }
        self
    }

    pub fn num(mut self, n: i64) -> Self {
        for byte in n.to_le_bytes() {
            self.byte(byte);
        }
        self
    }

    /// `m` and 32 hex digits.
    pub fn finish(self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = String::with_capacity(33);
        id.push('m');
        for word in [mix(self.a), mix(self.b ^ self.a.rotate_left(17))] {
            for shift in (0..16).rev() {
                let digit = HEX
                    .get(((word >> (shift * 4)) & 0xf) as usize)
                    .copied()
                    .unwrap_or(b'0');
                id.push(char::from(digit));
            }
        }
        id
    }
}

/// SplitMix64 finalizer: spreads FNV's weak low bits over the whole word.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_delimited() {
        let a = MessageId::new("op").str("ab").str("c").num(1).finish();
        assert_eq!(a, MessageId::new("op").str("ab").str("c").num(1).finish());
        assert_ne!(a, MessageId::new("op").str("a").str("bc").num(1).finish());
        assert_eq!(a.len(), 33);
        let m = MessageId::new("op").str("x").num(-7);
        assert_eq!(
            m.finish(),
            format!("m{:016x}{:016x}", mix(m.a), mix(m.b ^ m.a.rotate_left(17)))
        );
    }
}
