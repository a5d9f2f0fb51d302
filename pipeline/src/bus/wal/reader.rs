//! The read side of a partition's log: what readers may see (only fsynced data), the sparse index, and reading
//! records from an offset.
//!
//! The writer publishes into [`View`] after each fsync; readers copy what they need out of it under a brief lock
//! and then read the files with positioned reads, outside the lock, while the writer keeps appending beyond the
//! published length. Segment files deleted by retention stay readable through handles already taken (unix).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::frame::{self, Decoded};
use crate::bus::fsutil::read_exact_at;
use crate::bus::util::lock;
use crate::bus::{BusError, Offset, StoredRecord};

/// Bytes read per positioned read; records returned share these buffers.
const READ_CHUNK_BYTES: u64 = 64 * 1024;

/// Where the frame of one offset starts. Relative values keep an entry at 8 bytes; segments stay below 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexEntry {
    relative_offset: u32,
    position: u32,
}

impl IndexEntry {
    /// `None` when the values do not fit (a segment written with a larger size limit): reads then scan further.
    pub(super) fn new(relative_offset: u64, position: u64) -> Option<Self> {
        Some(IndexEntry {
            relative_offset: u32::try_from(relative_offset).ok()?,
            position: u32::try_from(position).ok()?,
        })
    }
}

pub(super) struct SegmentView {
    pub(super) base: Offset,
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
    /// Bytes readers may read: fsynced, whole frames.
    pub(super) len: u64,
    /// `None` for a sealed segment found at open that no read has needed yet: built on first use, which keeps
    /// reopening fast.
    pub(super) index: Option<Vec<IndexEntry>>,
}

pub(super) struct View {
    /// Oldest first; the last one is the segment being written.
    pub(super) segments: VecDeque<SegmentView>,
    pub(super) start: Offset,
    /// Offset after the last fsynced record.
    pub(super) end: Offset,
}

/// A cheap handle for reading one partition's log from any thread. Reads block on file I/O.
#[derive(Clone)]
pub struct WalReader {
    pub(super) view: Arc<Mutex<View>>,
}

enum Plan {
    Read {
        file: Arc<File>,
        position: u64,
        limit: u64,
        segment_end: Offset,
    },
    BuildIndex {
        base: Offset,
        path: PathBuf,
    },
}

impl WalReader {
    /// `(start, end)`: the first retained offset and the offset after the last durable record.
    pub fn bounds(&self) -> (Offset, Offset) {
        let view = lock(&self.view);
        (view.start, view.end)
    }

    /// Up to `max_records` durable records from `from`, possibly fewer; empty when `from` is at or past the end.
    /// Fails with [`BusError::OffsetOutOfRange`] when `from` is older than what is retained.
    pub fn read(&self, from: Offset, max_records: usize) -> Result<Vec<StoredRecord>, BusError> {
        let mut records = Vec::new();
        let mut next = from;
        while records.len() < max_records {
            let plan = match self.plan(next) {
                Ok(Some(plan)) => plan,
                Ok(None) => break,
                // Retention overtook a read already under way: return what it got.
                Err(BusError::OffsetOutOfRange { .. }) if !records.is_empty() => break,
                Err(error) => return Err(error),
            };
            match plan {
                Plan::BuildIndex { base, path } => self.build_index(base, path)?,
                Plan::Read {
                    file,
                    position,
                    limit,
                    segment_end,
                } => {
                    read_segment(&file, position, limit, &mut next, max_records, &mut records)?;
                    if records.len() < max_records && next < segment_end {
                        return Err(BusError::Corrupt(format!(
                            "segment holding offset {next} ends before offset {segment_end}"
                        )));
                    }
                }
            }
        }
        Ok(records)
    }

    fn plan(&self, next: Offset) -> Result<Option<Plan>, BusError> {
        let view = lock(&self.view);
        if next < view.start {
            return Err(BusError::OffsetOutOfRange {
                requested: next,
                earliest: view.start,
            });
        }
        if next >= view.end {
            return Ok(None);
        }
        let found = view
            .segments
            .partition_point(|segment| segment.base <= next)
            .checked_sub(1);
        let Some((found, segment)) = found.and_then(|found| Some((found, view.segments.get(found)?))) else {
            return Err(BusError::Corrupt(format!("no segment holds offset {next}")));
        };
        let segment_end = view
            .segments
            .get(found + 1)
            .map_or(view.end, |following| following.base);
        let Some(index) = &segment.index else {
            return Ok(Some(Plan::BuildIndex {
                base: segment.base,
                path: segment.path.clone(),
            }));
        };
        let relative = next - segment.base;
        let entry = index
            .partition_point(|entry| u64::from(entry.relative_offset) <= relative)
            .checked_sub(1);
        let position = entry
            .and_then(|entry| index.get(entry))
            .map_or(0, |entry| u64::from(entry.position));
        Ok(Some(Plan::Read {
            file: Arc::clone(&segment.file),
            position,
            limit: segment.len,
            segment_end,
        }))
    }

    /// Scans a sealed segment to index it. A segment deleted meanwhile is left to the next `plan` to report.
    fn build_index(&self, base: Offset, path: PathBuf) -> Result<(), BusError> {
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let mut view = lock(&self.view);
                if let Some(segment) = view.segments.iter_mut().find(|segment| segment.base == base) {
                    return Err(BusError::Io(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("segment file {} is missing", segment.path.display()),
                    )));
                }
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        let scan = frame::scan(&file, base)?;
        let mut view = lock(&self.view);
        if let Some(segment) = view.segments.iter_mut().find(|segment| segment.base == base) {
            segment.index.get_or_insert(scan.index);
        }
        Ok(())
    }
}

/// Reads frames of one segment from `position` up to `limit`, appending the records from `*next` on (contiguous)
/// until `records` holds `max_records`.
fn read_segment(
    file: &File,
    mut position: u64,
    limit: u64,
    next: &mut Offset,
    max_records: usize,
    records: &mut Vec<StoredRecord>,
) -> Result<(), BusError> {
    let mut want = READ_CHUNK_BYTES;
    while position < limit && records.len() < max_records {
        let len = (limit - position).min(want);
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| BusError::Corrupt("huge frame".into()))?];
        read_exact_at(file, &mut buf, position)?;
        let chunk = Bytes::from(buf);
        let mut at = 0;
        let mut incomplete = None;
        while records.len() < max_records {
            match frame::decode_at(&chunk, at) {
                Decoded::Record(record, frame_len) => {
                    at += frame_len;
                    if record.offset < *next {
                        continue; // before `from`: the index points at most a few KiB earlier
                    }
                    if record.offset > *next {
                        return Err(BusError::Corrupt(format!(
                            "offset {} where {next} was expected",
                            record.offset
                        )));
                    }
                    *next += 1;
                    records.push(record);
                }
                Decoded::Incomplete(frame_len) => {
                    incomplete = Some(frame_len as u64);
                    break;
                }
                Decoded::Corrupt(reason) => {
                    return Err(BusError::Corrupt(format!(
                        "{reason} at byte {}",
                        position + at as u64
                    )));
                }
            }
        }
        if at == 0 {
            // Not one whole frame in the chunk: read exactly the frame, unless it runs past what is published.
            match incomplete {
                Some(frame_len) if frame_len <= limit - position && frame_len > len => want = frame_len,
                _ => return Err(BusError::Corrupt(format!("truncated frame at byte {position}"))),
            }
            continue;
        }
        position += at as u64;
        want = READ_CHUNK_BYTES;
    }
    Ok(())
}
