//! The round log: what each round read and decided, so that a restart replays the rounds after the checkpoint
//! exactly as they ran.
//!
//! The operators' output depends on how the input was cut into rounds (on-arrival messages interleave with the
//! windowed ones the watermark releases at the end of a round) and on wall-clock decisions (which partitions count
//! as idle, the idle flush). A live run reads small rounds as events trickle in; a replay after a crash would read
//! the backlog in full rounds and emit the same messages in another order, or other windowed results, so sinks that
//! skip what they already wrote by count would skip the wrong ones. Each round therefore records the offsets it
//! read up to, the idle flag it gave each partition and whether it flushed idle state, and the replay follows the
//! records.
//!
//! One file per checkpoint, `rounds-<sequence>.jsonl` in the checkpoint directory, one JSON line per round taken
//! after checkpoint `sequence` (0: before the first checkpoint). A round is written before its output leaves the
//! process: the file is synced before output or snapshot updates of the round are delivered (rounds without output
//! are synced by the next one that has some). A torn last line (a crash while writing it) is dropped: that round's
//! output never left the process.
//!
//! A restore replays every log from the restored checkpoint's on, so the logs form one chain: logs older than the
//! oldest checkpoint on disk are the only ones deleted (deferred or lost checkpoints leave gaps in the numbers);
//! after a restore the next checkpoint is numbered past the newest log found (so its log is a new file); and no
//! checkpoint is taken while logged rounds are being replayed (they would be in two logs of the chain).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PipelineError;

const PREFIX: &str = "rounds-";
const SUFFIX: &str = ".jsonl";

/// What one round read and decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Per partition, the offset after the last record the round read (the next round's start).
    pub ends: Vec<u64>,
    /// Per partition, whether the round marked it idle.
    pub idle: Vec<bool>,
    /// Whether the round flushed idle state (`idle_flush_ms`).
    pub flush: bool,
}

/// The open round log of the current checkpoint.
pub(crate) struct RoundLog {
    dir: PathBuf,
    /// The checkpoint sequence of the file being written.
    sequence: u64,
    file: File,
    /// Written since the last sync.
    unsynced: bool,
    /// The file was opened (maybe created) since the last sync: its directory entry is synced with it once.
    entry_unsynced: bool,
}

fn error(path: &Path, what: &str, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::RoundLog(format!("{what} {}: {e}", path.display()))
}

fn path_of(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{sequence:020}{SUFFIX}"))
}

/// Opens (creating it when missing) the log file at `path` for appending rounds.
fn open_for_append(path: &Path) -> Result<File, PipelineError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| error(path, "opening", e))
}

/// Sequences of the round logs in `dir`, ascending.
fn sequences(dir: &Path) -> Result<Vec<u64>, PipelineError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| error(dir, "listing", e))? {
        let entry = entry.map_err(|e| error(dir, "listing", e))?;
        let name = entry.file_name();
        if let Some(Ok(sequence)) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.strip_suffix(SUFFIX))
            .map(str::parse::<u64>)
        {
            found.push(sequence);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The records of one file. A last line without its newline, or that does not parse, is torn: the file is cut
/// before it. Any other bad line is an error (the log cannot be trusted).
fn read_records(path: &Path, cut_torn_tail: bool) -> Result<Vec<RoundRecord>, PipelineError> {
    let bytes = fs::read(path).map_err(|e| error(path, "reading", e))?;
    let mut records = Vec::new();
    let mut valid = 0;
    let mut lines = bytes.split_inclusive(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let complete = line.ends_with(b"\n");
        match serde_json::from_slice::<RoundRecord>(line) {
            Ok(record) if complete => {
                records.push(record);
                valid += line.len();
            }
            _ if last => {
                tracing::warn!(path = %path.display(), "dropping a torn last round record");
                if cut_torn_tail {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| error(path, "opening", e))?;
                    file.set_len(valid as u64)
                        .and_then(|()| file.sync_data())
                        .map_err(|e| error(path, "truncating", e))?;
                }
            }
            // Only the last line can lack its newline.
            Ok(_) => return Err(error(path, "reading", "a line without newline before the end")),
            Err(e) => return Err(error(path, "parsing", e)),
        }
    }
    Ok(records)
}

impl RoundLog {
    /// Opens the log after checkpoint `sequence` (the one restored, 0 without one) and returns the rounds recorded
    /// since then, in order, to replay: those of `sequence` and of any later checkpoint that was written but could
    /// not be restored.
    pub(crate) fn open(
        dir: &Path,
        sequence: u64,
    ) -> Result<(RoundLog, VecDeque<RoundRecord>), PipelineError> {
        crate::bus::fsutil::create_dir_all_durable(dir).map_err(|e| error(dir, "creating", e))?;
        let mut replay = VecDeque::new();
        let later: Vec<u64> = sequences(dir)?.into_iter().filter(|s| *s >= sequence).collect();
        for (i, s) in later.iter().enumerate() {
            let newest = i + 1 == later.len();
            replay.extend(read_records(&path_of(dir, *s), newest)?);
        }
        // New rounds go after the replayed ones: into the newest file, or a new one for `sequence`.
        let current = later.last().copied().unwrap_or(sequence);
        let file = open_for_append(&path_of(dir, current))?;
        Ok((
            RoundLog {
                dir: dir.to_path_buf(),
                sequence: current,
                file,
                unsynced: false,
                entry_unsynced: true,
            },
            replay,
        ))
    }

    /// The checkpoint sequence of the file being written: after a restore, that of the newest log found, which
    /// may be past the restored checkpoint's (later checkpoints that never reached the disk). The next
    /// checkpoint must be numbered past it, so that its log is a new file.
    pub(crate) fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Appends `record` (not yet synced).
    pub(crate) fn append(&mut self, record: &RoundRecord) -> Result<(), PipelineError> {
        let mut line = serde_json::to_vec(record).map_err(|e| error(&self.dir, "encoding a round for", e))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| error(&self.dir, "writing a round to", e))?;
        self.unsynced = true;
        Ok(())
    }

    /// Makes every appended round durable.
    pub(crate) fn sync(&mut self) -> Result<(), PipelineError> {
        if self.unsynced {
            self.file
                .sync_data()
                .map_err(|e| error(&self.dir, "syncing the round log in", e))?;
            self.unsynced = false;
        }
        // A new file's name must be as durable as the rounds in it: a restore that found no file would cut the
        // rounds whose output already left the process differently.
        if self.entry_unsynced {
            crate::bus::fsutil::sync_dir(&self.dir)
                .map_err(|e| error(&self.dir, "syncing the directory of the round log", e))?;
            self.entry_unsynced = false;
        }
        Ok(())
    }

    /// Checkpoint `sequence` was written: later rounds go to its own file; files of checkpoints older than
    /// `oldest_kept` are deleted.
    pub(crate) fn rotate(&mut self, sequence: u64, oldest_kept: u64) -> Result<(), PipelineError> {
        debug_assert!(sequence > self.sequence, "a checkpoint's log is a new file");
        // Rounds without output wait for a later sync; the old file must hold them before its successor starts
        // (a restore from an earlier checkpoint replays both).
        self.sync()?;
        self.sequence = sequence;
        self.file = open_for_append(&path_of(&self.dir, sequence))?;
        self.entry_unsynced = true;
        for old in sequences(&self.dir)?.into_iter().filter(|s| *s < oldest_kept) {
            let old = path_of(&self.dir, old);
            fs::remove_file(&old).map_err(|e| error(&old, "removing", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(end: u64) -> RoundRecord {
        RoundRecord {
            ends: vec![end, end + 1],
            idle: vec![false, true],
            flush: end.is_multiple_of(2),
        }
    }

    #[test]
    fn rounds_after_the_restored_checkpoint_are_replayed_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, replay) = RoundLog::open(dir.path(), 0).expect("open");
        assert!(replay.is_empty());
        log.append(&record(1)).expect("append");
        log.append(&record(2)).expect("append");
        log.sync().expect("sync");
        log.rotate(1, 0).expect("rotate");
        log.append(&record(3)).expect("append");
        log.sync().expect("sync");
        drop(log);
        let (_, from_start) = RoundLog::open(dir.path(), 0).expect("reopen");
        assert_eq!(Vec::from(from_start), vec![record(1), record(2), record(3)]);
        let (mut log, from_one) = RoundLog::open(dir.path(), 1).expect("reopen");
        assert_eq!(Vec::from(from_one), vec![record(3)]);
        // New rounds follow the replayed ones; older files go once no kept checkpoint needs them.
        log.append(&record(4)).expect("append");
        log.rotate(2, 1).expect("rotate");
        assert_eq!(sequences(dir.path()).expect("list"), vec![1, 2]);
        let (_, from_one) = RoundLog::open(dir.path(), 1).expect("reopen");
        assert_eq!(Vec::from(from_one), vec![record(3), record(4)]);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_cut_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = RoundLog::open(dir.path(), 0).expect("open");
        log.append(&record(1)).expect("append");
        log.sync().expect("sync");
        drop(log);
        let path = path_of(dir.path(), 0);
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"{\"ends\":[4").expect("write");
        drop(file);
        let (mut log, replay) = RoundLog::open(dir.path(), 0).expect("reopen");
        assert_eq!(Vec::from(replay), vec![record(1)]);
        log.append(&record(2)).expect("append");
        drop(log);
        let (_, replay) = RoundLog::open(dir.path(), 0).expect("reopen");
        assert_eq!(Vec::from(replay), vec![record(1), record(2)]);

        fs::write(
            &path,
            b"{\"ends\":[4\n{\"ends\":[1],\"idle\":[false],\"flush\":false}\n",
        )
        .expect("write");
        assert!(matches!(
            RoundLog::open(dir.path(), 0),
            Err(PipelineError::RoundLog(_))
        ));
    }
}
