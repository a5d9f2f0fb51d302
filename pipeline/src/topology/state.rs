//! Live state outside the process (Redis): the topology mirrors every snapshot update to a [`LiveState`] as
//! absolute values, fenced by a [`StateStamp`] so that a replay after a crash, or a process that lost its lease,
//! can never leave older values behind.

use std::path::Path;

use async_trait::async_trait;

use super::PipelineError;
use crate::operator::SnapshotUpdate;

/// The version of one round's snapshot updates: `(writer epoch, round)`, ordered lexicographically.
///
/// The writer epoch is chosen at every start of the topology and is greater than any epoch an earlier start used
/// (see [`next_writer_epoch`]); the round counts `apply` calls within one start. A restarted process therefore
/// supersedes everything the crashed one wrote, replays from its checkpoint, and converges on exactly the values
/// of an uninterrupted run, while a stale process still writing somewhere is fenced out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StateStamp {
    pub epoch: u64,
    pub round: u64,
}

/// A store of the operators' live state (implemented by the Redis live-state sink).
#[async_trait]
pub trait LiveState: Send + Sync {
    /// Queues one round's updates. May wait (backpressure) while the store is unreachable and its buffer is full.
    async fn apply(&self, stamp: StateStamp, updates: Vec<SnapshotUpdate>) -> Result<(), PipelineError>;

    /// Returns once everything applied before the call is stored. The topology calls it before it writes a
    /// checkpoint, under a timeout: a checkpoint must not cover updates the store does not have yet.
    async fn flush(&self) -> Result<(), PipelineError>;
}

/// File in the checkpoint directory holding the last writer epoch.
const EPOCH_FILE: &str = "writer-epoch";

/// The writer epoch for a new start: the wall clock at start in milliseconds, or the last epoch + 1 when the clock
/// is behind it. With a checkpoint directory the epoch is persisted (written and synced before use), so that
/// restarts on the same data never reuse an epoch even if the clock goes backwards.
pub fn next_writer_epoch(checkpoint_dir: Option<&Path>, now_ms: u64) -> Result<u64, PipelineError> {
    let Some(dir) = checkpoint_dir else {
        return Ok(now_ms.max(1));
    };
    let io = |source: std::io::Error| PipelineError::WriterEpoch(format!("{}: {source}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(EPOCH_FILE);
    let last = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|e| PipelineError::WriterEpoch(format!("{} is not a number: {e}", path.display())))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => return Err(io(error)),
    };
    let epoch = now_ms.max(last.saturating_add(1));
    let temporary = dir.join(format!("{EPOCH_FILE}.tmp"));
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(epoch.to_string().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&temporary, &path).map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_grow_across_starts_even_when_the_clock_goes_back() {
        let dir = std::env::temp_dir().join(format!(
            "writer-epoch-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let first = next_writer_epoch(Some(&dir), 1_000).expect("first");
        let second = next_writer_epoch(Some(&dir), 500).expect("second");
        let third = next_writer_epoch(Some(&dir), 5_000).expect("third");
        assert_eq!((first, second, third), (1_000, 1_001, 5_000));
        std::fs::write(dir.join(EPOCH_FILE), "garbage").expect("write");
        assert!(next_writer_epoch(Some(&dir), 1).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(next_writer_epoch(None, 42).expect("memory"), 42);
    }

    #[test]
    fn stamps_order_by_epoch_then_round() {
        let a = StateStamp { epoch: 1, round: 9 };
        let b = StateStamp { epoch: 2, round: 0 };
        assert!(a < b);
    }
}
