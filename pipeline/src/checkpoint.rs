//! Checkpoints: the engine state and the input offsets it covers, written together so that a restore followed
//! by a replay from those offsets reproduces exactly the output an uninterrupted run gives.
//!
//! One JSON file per checkpoint, `checkpoint-{sequence:020}.json`, in the checkpoint directory. Written
//! atomically: to a temporary file, fsynced, renamed over, then the directory fsynced; a crash leaves either the
//! old or the new checkpoint, never half of one. The newest `keep` files are kept; on restore a file that does
//! not parse (it cannot be half-written, but disks fail) is skipped for the one before it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use social_schemas::derived::MessageData;

use crate::bus::Offset;
use crate::operator::EngineState;

/// Format version; a checkpoint of another version is not restored.
pub const CHECKPOINT_VERSION: u32 = 1;
const PREFIX: &str = "checkpoint-";
const SUFFIX: &str = ".json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub sequence: u64,
    /// Partition -> next offset to read from the input topic.
    pub offsets: BTreeMap<u32, Offset>,
    pub engine: EngineState,
    /// Outputs handed to the sink before this checkpoint, counted from the very first run. After a crash, the
    /// replay re-emits exactly the outputs numbered from here on: a sink that knows how many it had written in
    /// total can skip that many (exactly-once output; the ids are the same anyway).
    #[serde(default)]
    pub outputs_emitted: u64,
    /// Topic snapshots served to the delivery tier (topic -> part -> value, as JSON).
    #[serde(default)]
    pub snapshots: BTreeMap<String, BTreeMap<String, MessageData>>,
}

/// The input offsets of a checkpoint on disk ([`CheckpointStore::kept_offsets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointOffsets {
    pub sequence: u64,
    /// Partition -> next offset to read from the input topic.
    pub offsets: BTreeMap<u32, Offset>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint could not be encoded: {0}")]
    Encode(serde_json::Error),
}

/// Where the numbers of a pipeline's outputs start. The delivery tier keeps, per topic, the number of the last
/// output it stored and drops any output numbered at or below it: a replay after a crash re-sends outputs with the
/// numbers they had. A pipeline that starts over (no data directory, or a new one) must not look like a replay,
/// so each such start begins a new lineage numbered above every earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lineage {
    /// Added to the output count to number outputs: the start time of the lineage in milliseconds times
    /// [`LINEAGE_OUTPUTS_PER_MS`], or 0 for a data directory from before lineages were kept (and for a pipeline
    /// without one over a bus that outlives it, which reads its input from the start again at every start).
    pub sequence_base: u64,
    /// Begun by this start.
    pub fresh: bool,
    /// Where this lineage's outputs start in the derived log (a log that outlives the directory, a Fluvio topic,
    /// may hold an earlier lineage's before them). `None` until recorded, which happens before the lineage writes
    /// anything there (by its first start, or the next one when the first died before); 0 for a lineage from
    /// before this was kept.
    pub derived_start: Option<u64>,
}

/// Output numbers a lineage may use per millisecond since it began before a later lineage's numbers could meet
/// its own (a million outputs a second sustained over the lineage's whole life). Keeps the numbers under 2^53
/// (exact as Lua numbers in Redis) until the 23rd century.
pub const LINEAGE_OUTPUTS_PER_MS: u64 = 1_000;

impl Lineage {
    /// A lineage beginning now, kept nowhere (a pipeline without a data directory over an in-memory bus).
    pub fn begin(now_ms: i64) -> Lineage {
        Lineage {
            sequence_base: u64::try_from(now_ms)
                .unwrap_or(0)
                .saturating_mul(LINEAGE_OUTPUTS_PER_MS),
            fresh: true,
            derived_start: None,
        }
    }

    /// The lineage of a pipeline without a data directory over a bus that outlives it: every start reads the
    /// input from the start again and numbers its outputs from 0, as the previous start did.
    pub fn replayed() -> Lineage {
        Lineage {
            sequence_base: 0,
            fresh: false,
            derived_start: Some(0),
        }
    }
}

const LINEAGE_FILE: &str = "lineage";

/// A directory of checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    keep: usize,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

impl CheckpointStore {
    /// Opens (creating it when missing) the directory `dir`; keeps the newest `keep` (at least 1) checkpoints.
    pub fn open(dir: impl Into<PathBuf>, keep: usize) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Ok(CheckpointStore {
            dir,
            keep: keep.max(1),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lineage of this directory: read back, or begun now and written (atomically, fsynced) before any output
    /// can be numbered with it. A directory that already holds files but no lineage is from before lineages were
    /// kept: its outputs were numbered from 0, so its lineage is 0.
    pub fn lineage(&self, now_ms: i64) -> Result<Lineage, CheckpointError> {
        let path = self.dir.join(LINEAGE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let invalid = |detail: String| CheckpointError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, detail),
                };
                // `<base> <derived start or ->`; a file of one number is from before derived starts were kept.
                let mut fields = text.split_whitespace();
                let sequence_base = fields
                    .next()
                    .ok_or_else(|| invalid("empty".into()))?
                    .parse::<u64>()
                    .map_err(|error| invalid(error.to_string()))?;
                let derived_start = match fields.next() {
                    None => Some(0),
                    Some("-") => None,
                    Some(start) => Some(start.parse::<u64>().map_err(|error| invalid(error.to_string()))?),
                };
                return Ok(Lineage {
                    sequence_base,
                    fresh: false,
                    derived_start,
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&path)(error)),
        }
        // The temporary file of a start that died while writing the lineage does not make the directory old.
        let mut legacy = false;
        for entry in fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let entry = entry.map_err(io_error(&self.dir))?;
            legacy |= !entry.file_name().to_string_lossy().starts_with(".lineage");
        }
        let lineage = if legacy {
            Lineage::replayed()
        } else {
            Lineage::begin(now_ms)
        };
        self.write_lineage(&lineage)?;
        Ok(lineage)
    }

    /// Records where `lineage`'s outputs start in the derived log (before it writes anything there).
    pub fn record_derived_start(
        &self,
        lineage: &mut Lineage,
        derived_start: u64,
    ) -> Result<(), CheckpointError> {
        lineage.derived_start = Some(derived_start);
        self.write_lineage(lineage)
    }

    /// Writes the lineage file atomically (temporary file, fsync, rename, directory fsync).
    fn write_lineage(&self, lineage: &Lineage) -> Result<(), CheckpointError> {
        let path = self.dir.join(LINEAGE_FILE);
        let tmp = self.dir.join(format!(".{LINEAGE_FILE}.tmp"));
        {
            let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
            let text = match lineage.derived_start {
                Some(start) => format!("{} {start}\n", lineage.sequence_base),
                None => format!("{} -\n", lineage.sequence_base),
            };
            file.write_all(text.as_bytes()).map_err(io_error(&tmp))?;
            file.sync_all().map_err(io_error(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_error(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&self.dir))?;
        Ok(())
    }

    /// Writes `checkpoint` atomically and prunes old ones. Returns its size in bytes.
    pub fn write(&self, checkpoint: &Checkpoint) -> Result<u64, CheckpointError> {
        let bytes = serde_json::to_vec(checkpoint).map_err(CheckpointError::Encode)?;
        let name = format!("{PREFIX}{:020}{SUFFIX}", checkpoint.sequence);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        {
            let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
            file.write_all(&bytes).map_err(io_error(&tmp))?;
            file.sync_all().map_err(io_error(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_error(&path))?;
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&self.dir))?;
        self.prune()?;
        Ok(bytes.len() as u64)
    }

    /// Sequences of the checkpoint files present, ascending.
    fn sequences(&self) -> Result<Vec<u64>, CheckpointError> {
        let mut sequences = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let entry = entry.map_err(io_error(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(Ok(seq)) = name
                .strip_prefix(PREFIX)
                .and_then(|s| s.strip_suffix(SUFFIX))
                .map(str::parse::<u64>)
            {
                sequences.push(seq);
            }
        }
        sequences.sort_unstable();
        Ok(sequences)
    }

    fn prune(&self) -> Result<(), CheckpointError> {
        let sequences = self.sequences()?;
        let excess = sequences.len().saturating_sub(self.keep);
        for seq in sequences.into_iter().take(excess) {
            let path = self.dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"));
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
        Ok(())
    }

    /// The sequence of the oldest checkpoint file present (readable or not), if any.
    pub fn oldest_sequence(&self) -> Result<Option<u64>, CheckpointError> {
        Ok(self.sequences()?.first().copied())
    }

    /// The sequence and input offsets of every checkpoint present that reads back, oldest first (the engine state
    /// is skipped, not kept).
    pub fn kept_offsets(&self) -> Result<Vec<CheckpointOffsets>, CheckpointError> {
        /// The leading fields of a [`Checkpoint`]; the others are skipped.
        #[derive(Deserialize)]
        struct Head {
            version: u32,
            sequence: u64,
            offsets: BTreeMap<u32, Offset>,
        }
        let mut kept = Vec::new();
        for seq in self.sequences()? {
            let path = self.dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"));
            let bytes = fs::read(&path).map_err(io_error(&path))?;
            match serde_json::from_slice::<Head>(&bytes) {
                Ok(head) if head.version == CHECKPOINT_VERSION => kept.push(CheckpointOffsets {
                    sequence: head.sequence,
                    offsets: head.offsets,
                }),
                // Neither restorable nor worth keeping input for (`latest` says why).
                Ok(_) | Err(_) => {}
            }
        }
        Ok(kept)
    }

    /// The newest checkpoint that reads back, if any.
    pub fn latest(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        for seq in self.sequences()?.into_iter().rev() {
            let path = self.dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"));
            let bytes = fs::read(&path).map_err(io_error(&path))?;
            match serde_json::from_slice::<Checkpoint>(&bytes) {
                Ok(cp) if cp.version == CHECKPOINT_VERSION => return Ok(Some(cp)),
                Ok(cp) => {
                    tracing::warn!(path = %path.display(), version = cp.version, "skipping checkpoint of another version")
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping unreadable checkpoint")
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::{Engine, OperatorConfig};

    fn checkpoint(sequence: u64) -> Checkpoint {
        let engine = Engine::new(OperatorConfig::default(), 2).expect("config");
        Checkpoint {
            version: CHECKPOINT_VERSION,
            sequence,
            offsets: BTreeMap::from([(0, sequence), (1, 2 * sequence)]),
            engine: engine.snapshot(),
            outputs_emitted: 0,
            snapshots: BTreeMap::new(),
        }
    }

    #[test]
    fn a_lineage_is_begun_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path(), 2).expect("open");
        let begun = store.lineage(5).expect("lineage");
        assert_eq!(
            begun,
            Lineage {
                sequence_base: 5 * LINEAGE_OUTPUTS_PER_MS,
                fresh: true,
                derived_start: None,
            }
        );
        store.write(&checkpoint(1)).expect("write");
        let kept = CheckpointStore::open(dir.path(), 2)
            .expect("reopen")
            .lineage(99)
            .expect("lineage");
        assert_eq!(
            kept,
            Lineage {
                fresh: false,
                ..begun
            }
        );
        // A later lineage numbers above an earlier one's outputs.
        assert!(Lineage::begin(6).sequence_base > begun.sequence_base + LINEAGE_OUTPUTS_PER_MS - 1);

        // A directory from before lineages were kept numbered its outputs from 0.
        let old = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(old.path(), 2).expect("open");
        store.write(&checkpoint(1)).expect("write");
        assert_eq!(store.lineage(7).expect("lineage"), Lineage::replayed());
        assert_eq!(store.lineage(8).expect("lineage").sequence_base, 0, "and keeps 0");
        // A lineage file of one number is from before derived starts were kept: it starts at 0 there.
        std::fs::write(old.path().join("lineage"), "123\n").expect("write");
        assert_eq!(store.lineage(9).expect("lineage").derived_start, Some(0));

        // Where the derived log started is kept with it; a leftover temporary file is no sign of an old directory.
        let fresh = tempfile::tempdir().expect("tempdir");
        std::fs::write(fresh.path().join(".lineage.tmp"), "garbage").expect("tmp");
        let store = CheckpointStore::open(fresh.path(), 2).expect("open");
        let mut lineage = store.lineage(9).expect("lineage");
        assert!(lineage.fresh);
        store.record_derived_start(&mut lineage, 42).expect("record");
        assert_eq!(
            store.lineage(10).expect("lineage"),
            Lineage {
                fresh: false,
                ..lineage
            }
        );
    }

    #[test]
    fn keeps_the_newest_and_skips_unreadable_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path(), 2).expect("open");
        assert!(store.latest().expect("latest").is_none());
        for seq in 1..=4 {
            assert!(store.write(&checkpoint(seq)).expect("write") > 0);
        }
        assert_eq!(store.sequences().expect("list"), vec![3, 4]);
        assert_eq!(
            store.latest().expect("latest").map(|c| c.offsets),
            Some(checkpoint(4).offsets)
        );
        let offsets = |seqs: &[u64]| -> Vec<CheckpointOffsets> {
            seqs.iter()
                .map(|&sequence| CheckpointOffsets {
                    sequence,
                    offsets: checkpoint(sequence).offsets,
                })
                .collect()
        };
        assert_eq!(store.kept_offsets().expect("offsets"), offsets(&[3, 4]));
        // A damaged newest file: fall back to the one before.
        fs::write(
            dir.path().join(format!("{PREFIX}{:020}{SUFFIX}", 4)),
            b"{not json",
        )
        .expect("corrupt");
        assert_eq!(store.latest().expect("latest").map(|c| c.sequence), Some(3));
        assert_eq!(store.kept_offsets().expect("offsets"), offsets(&[3]));
        // No temporary files are left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}
