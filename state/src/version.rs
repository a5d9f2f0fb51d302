//! The version that fences live-state writes.

use std::fmt;

/// The position of a batch of snapshot updates in the pipeline's history: `(writer epoch, sequence)`, ordered
/// lexicographically.
///
/// - `epoch`: the writer epoch of the pipeline process, chosen at every start above any earlier start's (see
///   `social_pipeline::topology::next_writer_epoch`);
/// - `sequence`: the batch within that start.
///
/// Redis keeps the newest version it stored per topic and rejects a write older than it: a restarted pipeline
/// supersedes whatever the crashed one wrote, and a stale process still writing is fenced out. Re-applying a
/// batch of equal version is idempotent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateVersion {
    pub epoch: u64,
    pub sequence: u64,
}

impl StateVersion {
    pub const ZERO: StateVersion = StateVersion {
        epoch: 0,
        sequence: 0,
    };

    pub fn new(epoch: u64, sequence: u64) -> StateVersion {
        StateVersion { epoch, sequence }
    }

    /// The stored form: two zero-padded decimals (`00000000000000000012.00000000000000000003`), so Lua compares
    /// versions as strings, exactly and without floating point.
    pub fn encode(self) -> String {
        format!("{:020}.{:020}", self.epoch, self.sequence)
    }

    /// Parses [`StateVersion::encode`]'s form.
    pub fn decode(stored: &str) -> Option<StateVersion> {
        let (epoch, sequence) = stored.split_once('.')?;
        Some(StateVersion {
            epoch: epoch.parse().ok()?,
            sequence: sequence.parse().ok()?,
        })
    }
}

impl fmt::Display for StateVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.epoch, self.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_orders_like_the_versions() {
        let versions = [
            StateVersion::new(0, 0),
            StateVersion::new(0, 9),
            StateVersion::new(0, 10),
            StateVersion::new(1, 0),
            StateVersion::new(u64::MAX, u64::MAX),
        ];
        for pair in versions.windows(2) {
            let [a, b] = pair else { continue };
            assert!(a < b);
            assert!(a.encode() < b.encode(), "{a} vs {b}");
            assert_eq!(StateVersion::decode(&a.encode()), Some(*a));
        }
        assert_eq!(StateVersion::decode("x"), None);
    }
}
