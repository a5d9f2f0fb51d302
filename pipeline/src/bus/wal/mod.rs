//! Write-ahead log of one partition: a directory of segment files.
//!
//! # On disk
//! A segment is named after the offset of its first record, zero-padded to 20 digits: `00000000000000000000.log`,
//! `00000000000000183204.log`, ... Its content is a sequence of frames, all integers little-endian:
//!
//! ```text
//! [body_len u32][crc32 u32]                      header, 8 bytes
//! [offset u64][timestamp_ms i64][key_len u32]    body: 20 fixed bytes,
//! [key: key_len bytes][value: the rest]          then key and value (body_len - 20 - key_len bytes)
//! ```
//!
//! `crc32` (IEEE, `crc32fast`) covers the whole body. Offsets inside a partition are consecutive across
//! segments; nothing else is stored: the index lives in memory only and is rebuilt by scanning.
//!
//! # Writing
//! One writer owns the [`Wal`]: [`Wal::append`] encodes records into a buffer (flushed to the file now and then),
//! [`Wal::sync`] writes the rest, calls `sync_data` once, and only then *publishes* the new end to readers, so a
//! reader never sees a record that a crash could take back. A new segment is started before a record once the
//! current one holds `segment_bytes` or more (a record is never split; the finished segment is fsynced first,
//! the directory after creating the new file). After each sync, whole oldest segments are deleted while the
//! partition holds more than `retention_bytes` (the segment being written is never deleted), except segments
//! holding records at or after the *keep-from* offset (what a consumer has not read yet: see
//! [`Wal::keep_from`]).
//!
//! # Failures
//! If a write fails, everything appended since the last sync is cut off again (the file is truncated to the
//! last synced length) and the log stays usable. If an fsync fails, or starting a segment fails, or the cut is
//! impossible (a segment was started meanwhile, or truncating fails), the log refuses every later append: after
//! a failed fsync the kernel may have dropped the dirty pages, so only reopening (which re-reads the files) tells
//! what is durable.
//!
//! # Opening
//! Every segment but the last is trusted as it is (they were fsynced before the next one was started) and is
//! indexed on its first read. The last one is scanned frame by frame; at the first short, corrupt or
//! out-of-sequence frame the file is truncated, dropping that frame and everything after it, with a warning.
//!
//! # Index
//! Per segment, one entry (relative offset, file position; 8 bytes) per 4 KiB of frames, so about
//! 2 MiB of memory per GiB of log. A read binary-searches the segment, then the entry at or before the offset,
//! then scans forward.

mod frame;
mod reader;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use reader::WalReader;
use reader::{IndexEntry, SegmentView, View};

use super::fsutil::{sync_dir, write_all_at};
use super::util::lock;
use super::{BusError, Offset, Record};

pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
pub const DEFAULT_RETENTION_BYTES: u64 = 1024 * 1024 * 1024;

/// Encoded frames are written to the file (without fsync) whenever this much is buffered.
const FLUSH_BYTES: usize = 1024 * 1024;
const SEGMENT_SUFFIX: &str = ".log";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalConfig {
    /// Size at which a new segment is started; clamped to 1 byte ..= 4 GiB (index positions are 32-bit).
    pub segment_bytes: u64,
    /// Total size above which whole oldest segments are deleted.
    pub retention_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retention_bytes: DEFAULT_RETENTION_BYTES,
        }
    }
}

/// The segment being written.
struct Active {
    base: Offset,
    path: PathBuf,
    /// Shared with readers: both sides use positioned I/O, so nobody depends on the file cursor.
    file: Arc<File>,
    /// Bytes written to the file (fsynced or not); frames still in [`Wal::buffer`] come after.
    written: u64,
    /// Index entries not yet published.
    new_entries: Vec<IndexEntry>,
    last_index_position: Option<u64>,
    /// Whether the segment is in the [`View`] already.
    in_view: bool,
    /// State at the last publish, to cut back to after a failed write.
    published_len: u64,
    published_last_index_position: Option<u64>,
}

impl Active {
    fn new(base: Offset, path: PathBuf, file: File) -> Self {
        Active {
            base,
            path,
            file: Arc::new(file),
            written: 0,
            new_entries: Vec::new(),
            last_index_position: None,
            in_view: false,
            published_len: 0,
            published_last_index_position: None,
        }
    }
}

/// The writer of one partition's log. Not `Clone`: exactly one owner appends. Blocking I/O throughout.
pub struct Wal {
    dir: PathBuf,
    config: WalConfig,
    view: Arc<Mutex<View>>,
    active: Active,
    /// Segments finished since the last publish (fsynced, not yet visible).
    finished: Vec<Active>,
    buffer: Vec<u8>,
    next_offset: Offset,
    published_next_offset: Offset,
    /// Set once the log cannot take appends any more (see the module docs).
    failure: Option<String>,
    /// Retention keeps every segment holding a record at or after this offset (`u64::MAX`: none protected).
    keep_from: Arc<AtomicU64>,
}

impl Wal {
    /// Opens the log in `dir` (created when missing, with segment 0), cutting a torn tail off the last segment.
    pub fn open(dir: &Path, config: WalConfig) -> Result<Wal, BusError> {
        Self::open_keeping(dir, config, u64::MAX)
    }

    /// [`Wal::open`], with retention keeping every record at or after `keep_from` from the start.
    pub fn open_keeping(dir: &Path, config: WalConfig, keep_from: Offset) -> Result<Wal, BusError> {
        let config = WalConfig {
            segment_bytes: config.segment_bytes.clamp(1, 1 << 32),
            ..config
        };
        fs::create_dir_all(dir)?;
        let mut bases = segment_bases(dir)?;
        if bases.is_empty() {
            File::create(segment_path(dir, 0))?;
            sync_dir(dir)?;
            bases.push(0);
        }
        let mut segments = VecDeque::with_capacity(bases.len());
        let Some((&last_base, sealed)) = bases.split_last() else {
            return Err(BusError::Corrupt(format!("no segment in {}", dir.display())));
        };
        for &base in sealed {
            let path = segment_path(dir, base);
            let file = File::open(&path)?;
            let len = file.metadata()?.len();
            segments.push_back(SegmentView {
                base,
                path,
                file: Arc::new(file),
                len,
                index: None,
            });
        }

        let path = segment_path(dir, last_base);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let scan = frame::scan(&file, last_base)?;
        if let Some(problem) = &scan.problem {
            tracing::warn!(
                segment = %path.display(),
                kept_bytes = scan.valid_len,
                dropped_bytes = scan.file_len - scan.valid_len,
                next_offset = scan.next_offset,
                problem = %problem,
                "cutting torn or corrupt tail off wal segment"
            );
            file.set_len(scan.valid_len)?;
        }
        // Always: the process that wrote the tail may have died between its write and its fsync, leaving records
        // no append acknowledged in the page cache only; published now, they must survive a power loss.
        file.sync_all()?;
        let mut active = Active::new(last_base, path.clone(), file);
        active.written = scan.valid_len;
        active.last_index_position = scan.last_index_position;
        active.in_view = true;
        active.published_len = scan.valid_len;
        active.published_last_index_position = scan.last_index_position;
        segments.push_back(SegmentView {
            base: last_base,
            path,
            file: Arc::clone(&active.file),
            len: scan.valid_len,
            index: Some(scan.index),
        });

        let start = segments.front().map_or(last_base, |first| first.base);
        let view = View {
            segments,
            start,
            end: scan.next_offset,
        };
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            config,
            view: Arc::new(Mutex::new(view)),
            active,
            finished: Vec::new(),
            buffer: Vec::new(),
            next_offset: scan.next_offset,
            published_next_offset: scan.next_offset,
            failure: None,
            keep_from: Arc::new(AtomicU64::new(keep_from)),
        };
        wal.apply_retention();
        Ok(wal)
    }

    /// The offset from which retention keeps every record, shared: the owner of the log lowers or raises it as
    /// its consumers commit (records they have not read must not be deleted under them).
    pub fn keep_from(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.keep_from)
    }

    /// Marks the log failed, as a failed fsync does (tests of what uses the log).
    #[cfg(test)]
    pub(crate) fn fail_for_test(&mut self) {
        self.failure = Some("failed by a test".to_owned());
    }

    /// Whether the log refuses every append until reopened (see the module docs).
    pub fn is_failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Bytes the partition holds on disk (published segments).
    pub fn bytes(&self) -> u64 {
        lock(&self.view).segments.iter().map(|segment| segment.len).sum()
    }

    pub fn reader(&self) -> WalReader {
        WalReader {
            view: Arc::clone(&self.view),
        }
    }

    /// Offset the next appended record gets (appended, not necessarily synced).
    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }

    /// Adds records after the last one and returns the offset of the first. They are neither durable nor visible
    /// to readers before [`Wal::sync`]. On error, everything appended since the last sync is discarded.
    pub fn append(&mut self, records: &[Record]) -> Result<Offset, BusError> {
        self.check_usable()?;
        let first = self.next_offset;
        for record in records {
            if let Err(error) = self.append_one(record) {
                self.discard_unsynced();
                return Err(error);
            }
        }
        Ok(first)
    }

    /// Makes everything appended durable (one `sync_data`), then visible to readers, then applies retention.
    pub fn sync(&mut self) -> Result<(), BusError> {
        self.check_usable()?;
        if self.next_offset == self.published_next_offset && self.finished.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.flush() {
            self.discard_unsynced();
            return Err(error.into());
        }
        if let Err(error) = self.active.file.sync_data() {
            return Err(self.fail("fsync", error));
        }
        self.publish();
        self.apply_retention();
        Ok(())
    }

    fn append_one(&mut self, record: &Record) -> Result<(), BusError> {
        let size = self.active.written + self.buffer.len() as u64;
        if size >= self.config.segment_bytes {
            self.roll()?;
        }
        let position = self.active.written + self.buffer.len() as u64;
        frame::encode(&mut self.buffer, self.next_offset, record)?;
        if self
            .active
            .last_index_position
            .is_none_or(|last| position - last >= frame::INDEX_INTERVAL_BYTES)
        {
            if let Some(entry) = IndexEntry::new(self.next_offset - self.active.base, position) {
                self.active.new_entries.push(entry);
            }
            self.active.last_index_position = Some(position);
        }
        self.next_offset += 1;
        if self.buffer.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        write_all_at(&self.active.file, &self.buffer, self.active.written)?;
        self.active.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Finishes the active segment (written and fsynced, published with the next sync) and starts a new one at
    /// `next_offset`.
    fn roll(&mut self) -> Result<(), BusError> {
        self.flush()?;
        if let Err(error) = self.active.file.sync_data() {
            return Err(self.fail("fsync", error));
        }
        // From here on a failure is not undone but stops the log: the finished segment is whole and fsynced, so
        // a reopen finds a consistent log whether or not the new file made it to disk.
        let path = segment_path(&self.dir, self.next_offset);
        let created = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path);
        let file = match created {
            Ok(file) => file,
            Err(error) => return Err(self.fail("creating a segment", error)),
        };
        if let Err(error) = sync_dir(&self.dir) {
            return Err(self.fail("fsync of the directory", error));
        }
        let finished = std::mem::replace(&mut self.active, Active::new(self.next_offset, path, file));
        self.finished.push(finished);
        Ok(())
    }

    fn publish(&mut self) {
        let mut view = lock(&self.view);
        for segment in self.finished.iter_mut().chain(std::iter::once(&mut self.active)) {
            match view.segments.back_mut() {
                Some(last) if segment.in_view && last.base == segment.base => {
                    last.len = segment.written;
                    if let Some(index) = &mut last.index {
                        index.append(&mut segment.new_entries);
                    }
                }
                _ => {
                    view.segments.push_back(SegmentView {
                        base: segment.base,
                        path: segment.path.clone(),
                        file: Arc::clone(&segment.file),
                        len: segment.written,
                        index: Some(std::mem::take(&mut segment.new_entries)),
                    });
                    segment.in_view = true;
                }
            }
            segment.published_len = segment.written;
            segment.published_last_index_position = segment.last_index_position;
        }
        view.end = self.next_offset;
        drop(view);
        self.finished.clear();
        self.published_next_offset = self.next_offset;
    }

    /// Deletes whole oldest segments while the partition holds more than the retention; never the active one,
    /// nor one holding records at or after the keep-from offset. Runs after every sync; call it also after
    /// raising the keep-from offset when no append is coming (a full partition refuses them). Blocking.
    pub fn apply_retention(&mut self) {
        let keep_from = self.keep_from.load(Ordering::Acquire);
        let doomed: Vec<PathBuf> = {
            let mut view = lock(&self.view);
            let mut total: u64 = view.segments.iter().map(|segment| segment.len).sum();
            let mut doomed = Vec::new();
            // The oldest segment's records end where the next one begins.
            let consumed = |view: &View| view.segments.get(1).is_some_and(|next| next.base <= keep_from);
            while total > self.config.retention_bytes && view.segments.len() > 1 && consumed(&view) {
                let Some(oldest) = view.segments.pop_front() else {
                    break;
                };
                total = total.saturating_sub(oldest.len);
                doomed.push(oldest.path);
            }
            if let Some(first) = view.segments.front() {
                view.start = first.base;
            }
            doomed
        };
        for path in doomed {
            // A segment that survives here is found again on reopen and deleted by the next retention pass.
            match fs::remove_file(&path) {
                Ok(()) => tracing::debug!(segment = %path.display(), "retention deleted wal segment"),
                Err(error) => {
                    tracing::warn!(segment = %path.display(), %error, "could not delete wal segment")
                }
            }
        }
    }

    /// Cuts the log back to its last published state after a failed append or write, or marks it failed when
    /// that is impossible.
    fn discard_unsynced(&mut self) {
        self.buffer.clear();
        if self.failure.is_some() {
            return;
        }
        if !self.finished.is_empty() {
            self.failure = Some("a write failed after a new segment was started".to_string());
            return;
        }
        if let Err(error) = self.active.file.set_len(self.active.published_len) {
            self.failure = Some(format!("could not cut back a failed write: {error}"));
            return;
        }
        self.active.written = self.active.published_len;
        self.active.new_entries.clear();
        self.active.last_index_position = self.active.published_last_index_position;
        self.next_offset = self.published_next_offset;
    }

    /// Marks the log failed (see the module docs) and returns the error for the caller.
    fn fail(&mut self, during: &str, error: io::Error) -> BusError {
        tracing::error!(
            dir = %self.dir.display(), %error, during,
            "wal write failed; the partition refuses appends until reopened"
        );
        self.failure = Some(format!("{during} failed: {error}"));
        self.buffer.clear();
        BusError::Io(error)
    }

    fn check_usable(&self) -> Result<(), BusError> {
        match &self.failure {
            None => Ok(()),
            Some(failure) => Err(BusError::Io(io::Error::other(format!(
                "wal {} refuses appends after an earlier failure ({failure}); reopen the bus",
                self.dir.display()
            )))),
        }
    }
}

fn segment_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{base:020}{SEGMENT_SUFFIX}"))
}

/// Base offsets of the segment files in `dir`, ascending. Other files are ignored.
fn segment_bases(dir: &Path) -> io::Result<Vec<Offset>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let base = name
            .to_str()
            .and_then(|name| name.strip_suffix(SEGMENT_SUFFIX))
            .filter(|digits| digits.len() == 20 && digits.bytes().all(|byte| byte.is_ascii_digit()));
        if let Some(base) = base.and_then(|digits| digits.parse().ok()) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}
