//! The record frame of a segment (see the module docs of [`super`] for the layout): encoding, decoding from a
//! buffer already in memory, and the checking scan that recovery and lazy indexing run over a whole file.

use std::fs::File;
use std::io::{self, BufReader, Read};

use bytes::Bytes;

use super::reader::IndexEntry;
use crate::bus::{BusError, Offset, Record, StoredRecord};

/// `[body_len u32][crc32 u32]` in front of every body.
pub(super) const HEADER_BYTES: usize = 8;
/// `[offset u64][timestamp_ms i64][key_len u32]` at the start of every body.
pub(super) const FIXED_BODY_BYTES: usize = 20;
/// One sparse index entry per this many bytes of segment (at the first frame starting at or after the mark).
pub(super) const INDEX_INTERVAL_BYTES: u64 = 4096;

/// Appends the frame of `record` at `offset` to `buf`.
pub(super) fn encode(buf: &mut Vec<u8>, offset: Offset, record: &Record) -> Result<(), BusError> {
    let too_large = || {
        BusError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "record too large for one wal frame",
        ))
    };
    let key_len = u32::try_from(record.key.len()).map_err(|_| too_large())?;
    let body_len = FIXED_BODY_BYTES
        .checked_add(record.key.len())
        .and_then(|len| len.checked_add(record.value.len()))
        .and_then(|len| u32::try_from(len).ok())
        .ok_or_else(too_large)?;
    let offset_bytes = offset.to_le_bytes();
    let timestamp_bytes = record.timestamp_ms.to_le_bytes();
    let key_len_bytes = key_len.to_le_bytes();
    let body: [&[u8]; 5] = [
        &offset_bytes,
        &timestamp_bytes,
        &key_len_bytes,
        &record.key,
        &record.value,
    ];
    let mut crc = crc32fast::Hasher::new();
    for part in body {
        crc.update(part);
    }
    buf.reserve(HEADER_BYTES + FIXED_BODY_BYTES + record.key.len() + record.value.len());
    buf.extend_from_slice(&body_len.to_le_bytes());
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    for part in body {
        buf.extend_from_slice(part);
    }
    Ok(())
}

/// The fixed fields of a body whose length and crc were already checked.
struct BodyFields {
    offset: Offset,
    timestamp_ms: i64,
    key_len: usize,
}

fn parse_body(body: &[u8]) -> Option<BodyFields> {
    let offset = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let timestamp_ms = i64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
    let key_len = usize::try_from(u32::from_le_bytes(body.get(16..20)?.try_into().ok()?)).ok()?;
    (key_len <= body.len().checked_sub(FIXED_BODY_BYTES)?).then_some(BodyFields {
        offset,
        timestamp_ms,
        key_len,
    })
}

/// `(body_len, crc)` of a header.
fn parse_header(header: &[u8]) -> Option<(usize, u32)> {
    let body_len = u32::from_le_bytes(header.get(0..4)?.try_into().ok()?);
    let crc = u32::from_le_bytes(header.get(4..8)?.try_into().ok()?);
    Some((usize::try_from(body_len).ok()?, crc))
}

pub(super) enum Decoded {
    /// A whole, valid frame and its length in bytes.
    Record(StoredRecord, usize),
    /// The buffer ends inside the frame, which is this many bytes long in total.
    Incomplete(usize),
    Corrupt(&'static str),
}

/// Decodes the frame starting at `at` in `chunk`; key and value share `chunk`'s memory.
pub(super) fn decode_at(chunk: &Bytes, at: usize) -> Decoded {
    let Some((body_len, crc)) = chunk.get(at..).and_then(parse_header) else {
        return Decoded::Incomplete(HEADER_BYTES);
    };
    if body_len < FIXED_BODY_BYTES {
        return Decoded::Corrupt("frame shorter than its fixed fields");
    }
    let frame_len = HEADER_BYTES + body_len;
    let body_start = at + HEADER_BYTES;
    let body_end = at + frame_len;
    let Some(body) = chunk.get(body_start..body_end) else {
        return Decoded::Incomplete(frame_len);
    };
    if crc32fast::hash(body) != crc {
        return Decoded::Corrupt("frame crc mismatch");
    }
    let Some(fields) = parse_body(body) else {
        return Decoded::Corrupt("frame key longer than its body");
    };
    // In bounds: parse_body checked key_len against the body, which lies inside chunk.
    let key_start = body_start + FIXED_BODY_BYTES;
    let value_start = key_start + fields.key_len;
    let record = StoredRecord {
        offset: fields.offset,
        key: chunk.slice(key_start..value_start),
        value: chunk.slice(value_start..body_end),
        timestamp_ms: fields.timestamp_ms,
    };
    Decoded::Record(record, frame_len)
}

/// What a checking scan of a segment found.
pub(super) struct Scan {
    /// Bytes from the start that hold whole, valid, consecutive frames.
    pub(super) valid_len: u64,
    pub(super) file_len: u64,
    /// Offset following the last valid frame.
    pub(super) next_offset: Offset,
    pub(super) index: Vec<IndexEntry>,
    /// Position of the last index entry, from which the writer keeps counting.
    pub(super) last_index_position: Option<u64>,
    /// Why the scan stopped before the end of the file, if it did.
    pub(super) problem: Option<String>,
}

/// Reads the segment whose first offset is `base` from its start, checking every frame (length within the
/// file, crc, offsets consecutive from `base`) and building the sparse index; stops at the first bad frame.
/// I/O errors are returned; bad data is reported in [`Scan::problem`].
pub(super) fn scan(file: &File, base: Offset) -> io::Result<Scan> {
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut scan = Scan {
        valid_len: 0,
        file_len,
        next_offset: base,
        index: Vec::new(),
        last_index_position: None,
        problem: None,
    };
    let mut header = [0u8; HEADER_BYTES];
    let mut body = Vec::new();
    while scan.valid_len < file_len {
        let position = scan.valid_len;
        let remaining = file_len - position;
        if remaining < HEADER_BYTES as u64 {
            scan.problem = Some(format!("{remaining} trailing bytes, shorter than a frame header"));
            break;
        }
        reader.read_exact(&mut header)?;
        let Some((body_len, crc)) = parse_header(&header) else {
            scan.problem = Some("unreadable frame header".to_string());
            break;
        };
        if body_len < FIXED_BODY_BYTES || body_len as u64 > remaining - HEADER_BYTES as u64 {
            scan.problem = Some(format!(
                "frame of {body_len} body bytes with {remaining} bytes left"
            ));
            break;
        }
        body.resize(body_len, 0);
        reader.read_exact(&mut body)?;
        if crc32fast::hash(&body) != crc {
            scan.problem = Some("crc mismatch".to_string());
            break;
        }
        match parse_body(&body) {
            Some(fields) if fields.offset == scan.next_offset => {}
            Some(fields) => {
                scan.problem = Some(format!(
                    "offset {} where {} was expected",
                    fields.offset, scan.next_offset
                ));
                break;
            }
            None => {
                scan.problem = Some("key longer than its frame".to_string());
                break;
            }
        }
        if scan
            .last_index_position
            .is_none_or(|last| position - last >= INDEX_INTERVAL_BYTES)
        {
            if let Some(entry) = IndexEntry::new(scan.next_offset - base, position) {
                scan.index.push(entry);
            }
            scan.last_index_position = Some(position);
        }
        scan.valid_len = position + (HEADER_BYTES + body_len) as u64;
        scan.next_offset += 1;
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &'static [u8], value: &'static [u8]) -> Record {
        Record {
            key: Bytes::from_static(key),
            value: Bytes::from_static(value),
            timestamp_ms: -5,
        }
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, &record(b"k", b"value")).unwrap();
        encode(&mut buf, 8, &record(b"", b"")).unwrap();
        assert_eq!(buf.len(), 2 * (HEADER_BYTES + FIXED_BODY_BYTES) + 6);
        let chunk = Bytes::from(buf.clone());
        let Decoded::Record(first, len) = decode_at(&chunk, 0) else {
            panic!("first frame")
        };
        assert_eq!(
            (first.offset, &first.key[..], &first.value[..], first.timestamp_ms),
            (7, &b"k"[..], &b"value"[..], -5)
        );
        let Decoded::Record(second, _) = decode_at(&chunk, len) else {
            panic!("second frame")
        };
        assert_eq!((second.offset, second.key.len(), second.value.len()), (8, 0, 0));
        assert!(matches!(
            decode_at(&chunk, chunk.len()),
            Decoded::Incomplete(HEADER_BYTES)
        ));
        assert!(matches!(decode_at(&chunk.slice(..len - 1), 0), Decoded::Incomplete(n) if n == len));

        let mut damaged = buf;
        damaged[HEADER_BYTES + 3] ^= 0x40;
        assert!(matches!(decode_at(&Bytes::from(damaged), 0), Decoded::Corrupt(_)));
    }
}
