//! Choosing a partition for a key. Stable across processes and versions: FNV-1a, 64 bit.

/// Partition for `key` among `partitions`. Records without a key go to partition 0.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    if partitions <= 1 || key.is_empty() {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_in_range() {
        assert_eq!(partition_for_key(b"user-1", 8), partition_for_key(b"user-1", 8));
        for i in 0..1000 {
            let key = format!("user-{i}");
            assert!(partition_for_key(key.as_bytes(), 8) < 8);
        }
        assert_eq!(partition_for_key(b"", 8), 0);
        assert_eq!(partition_for_key(b"anything", 1), 0);
    }

    #[test]
    fn spreads_keys() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[partition_for_key(format!("user-{i}").as_bytes(), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
    }
}
