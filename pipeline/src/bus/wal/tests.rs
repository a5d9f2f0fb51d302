use std::fs::OpenOptions;
use std::io::Write;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::bus::StoredRecord;
use crate::bus::conformance::{assert_tagged, records};

fn config(segment_bytes: u64) -> WalConfig {
    WalConfig {
        segment_bytes,
        retention_bytes: u64::MAX,
    }
}

fn append_synced(wal: &mut Wal, records: &[Record]) -> Offset {
    let first = wal.append(records).unwrap();
    wal.sync().unwrap();
    first
}

fn read_all(reader: &WalReader) -> Vec<StoredRecord> {
    let (start, _) = reader.bounds();
    reader.read(start, usize::MAX).unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    segment_bases(dir)
        .unwrap()
        .into_iter()
        .map(|base| segment_path(dir, base))
        .collect()
}

fn last_segment(dir: &Path) -> PathBuf {
    segment_files(dir).pop().unwrap()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn reopen_finds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    assert_eq!(append_synced(&mut wal, &records(0, 3)), 0);
    assert_eq!(append_synced(&mut wal, &records(3, 500)), 3);
    drop(wal);

    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    assert_eq!(wal.next_offset(), 503);
    assert_eq!(wal.reader().bounds(), (0, 503));
    let all = read_all(&wal.reader());
    assert_eq!(all.len(), 503);
    assert_tagged(&all, 0);
    assert_eq!(append_synced(&mut wal, &records(503, 1)), 503);
    assert_tagged(&wal.reader().read(500, 10).unwrap(), 500);
}

#[test]
fn appends_are_invisible_until_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    let reader = wal.reader();
    wal.append(&records(0, 5)).unwrap();
    assert_eq!(reader.bounds(), (0, 0));
    assert!(reader.read(0, 10).unwrap().is_empty());
    wal.sync().unwrap();
    assert_eq!(reader.bounds(), (0, 5));
    assert_tagged(&reader.read(0, 10).unwrap(), 0);
}

#[test]
fn torn_tail_is_cut_and_the_log_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    append_synced(&mut wal, &records(0, 10));
    drop(wal);
    let segment = last_segment(dir.path());
    let full = file_len(&segment);
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(full - 3)
        .unwrap();

    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    assert_eq!(wal.next_offset(), 9, "the torn record is dropped");
    assert_tagged(&read_all(&wal.reader()), 0);
    let frame = full / 10;
    assert_eq!(
        file_len(&segment),
        full - frame,
        "the partial frame is gone from the file"
    );
    assert_eq!(append_synced(&mut wal, &records(9, 2)), 9);
    drop(wal);

    let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    let all = read_all(&wal.reader());
    assert_eq!(all.len(), 11);
    assert_tagged(&all, 0);
}

#[test]
fn garbage_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    append_synced(&mut wal, &records(0, 10));
    drop(wal);
    let segment = last_segment(dir.path());
    let full = file_len(&segment);
    OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(&[0xAB; 100])
        .unwrap();

    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    assert_eq!(wal.next_offset(), 10);
    assert_eq!(file_len(&segment), full);
    assert_eq!(append_synced(&mut wal, &records(10, 1)), 10);
    assert_tagged(&read_all(&wal.reader()), 0);
}

#[test]
fn corrupt_frame_drops_it_and_everything_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    append_synced(&mut wal, &records(0, 10));
    drop(wal);
    let segment = last_segment(dir.path());
    let mut bytes = fs::read(&segment).unwrap();
    let frame = bytes.len() / 10; // all ten frames have the same size
    bytes[5 * frame + frame - 1] ^= 0x01; // last byte of the value of record 5
    fs::write(&segment, &bytes).unwrap();

    let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    assert_eq!(wal.next_offset(), 5);
    assert_eq!(file_len(&segment), 5 * frame as u64);
}

#[test]
fn rolls_segments_and_reads_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), config(200)).unwrap();
    append_synced(&mut wal, &records(0, 70));
    append_synced(&mut wal, &records(70, 30));
    let files = segment_files(dir.path());
    assert!(files.len() > 10, "{} segments", files.len());
    for file in &files[..files.len() - 1] {
        let len = file_len(file);
        assert!(
            (200..200 + 40).contains(&len),
            "a segment is rolled at the first frame past the size: {len}"
        );
    }
    let check = |reader: &WalReader| {
        for from in 0..100 {
            let got = reader.read(from, 7).unwrap();
            assert_eq!(got.len(), 7.min(100 - from as usize));
            assert_tagged(&got, from);
        }
        assert_tagged(&read_all(reader), 0);
    };
    check(&wal.reader());
    drop(wal);
    // After reopening, the sealed segments have no index until read.
    let wal = Wal::open(dir.path(), config(200)).unwrap();
    assert!(
        lock(&wal.view)
            .segments
            .iter()
            .rev()
            .skip(1)
            .all(|segment| segment.index.is_none())
    );
    check(&wal.reader());
    assert!(
        lock(&wal.view)
            .segments
            .iter()
            .all(|segment| segment.index.is_some())
    );
}

#[test]
fn index_stays_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    for batch in 0..20 {
        append_synced(&mut wal, &records(batch * 1000, 1000));
    }
    let bytes = file_len(&last_segment(dir.path()));
    let entries = lock(&wal.view)
        .segments
        .back()
        .and_then(|segment| segment.index.as_ref().map(Vec::len));
    let expected = bytes / frame::INDEX_INTERVAL_BYTES;
    assert!(entries.is_some_and(|entries| (expected as usize..=expected as usize + 1).contains(&entries)));
    // The index built by scanning at open matches the one the writer kept.
    let written = lock(&wal.view)
        .segments
        .back()
        .and_then(|segment| segment.index.clone());
    drop(wal);
    let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    assert_eq!(
        lock(&wal.view)
            .segments
            .back()
            .and_then(|segment| segment.index.clone()),
        written
    );
    assert_tagged(&wal.reader().read(12_345, 100).unwrap(), 12_345);
}

#[test]
fn reads_a_record_larger_than_a_read_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), config(1000)).unwrap();
    let big = Record {
        key: Bytes::from_static(b"big"),
        value: Bytes::from(vec![7u8; 300 * 1024]),
        timestamp_ms: 1,
    };
    append_synced(&mut wal, &records(0, 2));
    append_synced(&mut wal, std::slice::from_ref(&big));
    append_synced(&mut wal, &records(3, 2));
    let got = wal.reader().read(1, 10).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!((got[1].offset, &got[1].value), (2, &big.value));
    assert_eq!(got[3].offset, 4);
}

#[test]
fn retention_deletes_whole_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        segment_bytes: 1000,
        retention_bytes: 3000,
    };
    let mut wal = Wal::open(dir.path(), config).unwrap();
    for batch in 0..40 {
        append_synced(&mut wal, &records(batch * 10, 10));
    }
    let reader = wal.reader();
    let (start, end) = reader.bounds();
    assert_eq!(end, 400);
    let files = segment_files(dir.path());
    let on_disk: u64 = files.iter().map(|file| file_len(file)).sum();
    assert!(on_disk <= 3000, "{on_disk} bytes kept");
    assert_eq!(segment_bases(dir.path()).unwrap().first(), Some(&start));
    let gone = reader.read(0, 10);
    assert!(matches!(gone, Err(BusError::OffsetOutOfRange { requested: 0, earliest }) if earliest == start));
    assert_tagged(&reader.read(start, 1000).unwrap(), start);
    drop(wal);

    let wal = Wal::open(dir.path(), config).unwrap();
    assert_eq!(wal.reader().bounds(), (start, 400));
    // A reader outlives its writer and still reads the files it knows.
    assert_eq!(read_all(&reader).len() as u64, 400 - start);
}

#[test]
fn a_failed_log_refuses_appends_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    append_synced(&mut wal, &records(0, 2));
    wal.failure = Some("test".into());
    assert!(matches!(wal.append(&records(2, 1)), Err(BusError::Io(_))));
    assert!(matches!(wal.sync(), Err(BusError::Io(_))));
    drop(wal);
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    assert_eq!(append_synced(&mut wal, &records(2, 1)), 2);
}

#[test]
fn discarding_unsynced_appends_cuts_the_file_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    append_synced(&mut wal, &records(0, 2));
    let synced = file_len(&last_segment(dir.path()));
    let large = Record {
        key: Bytes::new(),
        value: Bytes::from(vec![0u8; 1000]),
        timestamp_ms: 0,
    };
    // Over FLUSH_BYTES: part of it is already in the file.
    wal.append(&vec![large; FLUSH_BYTES / 1000 + 10]).unwrap();
    assert!(file_len(&last_segment(dir.path())) > synced);
    wal.discard_unsynced();
    assert_eq!(file_len(&last_segment(dir.path())), synced);
    assert_eq!(append_synced(&mut wal, &records(2, 1)), 2);
    drop(wal);
    let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
    assert_tagged(&read_all(&wal.reader()), 0);
    assert_eq!(wal.next_offset(), 3);
}

fn arbitrary_record() -> impl Strategy<Value = Record> {
    (
        proptest::collection::vec(any::<u8>(), 0..8),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<i64>(),
    )
        .prop_map(|(key, value, timestamp_ms)| Record {
            key: Bytes::from(key),
            value: Bytes::from(value),
            timestamp_ms,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of appends (random batch sizes, small segments, reopening now and then) reads back exactly.
    #[test]
    fn reopen_returns_exactly_what_was_appended(
        batches in proptest::collection::vec(proptest::collection::vec(arbitrary_record(), 0..40), 1..12),
        segment_bytes in 64u64..4096,
        reopen_every in 1usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), config(segment_bytes)).unwrap();
        let mut expected: Vec<Record> = Vec::new();
        for (n, batch) in batches.iter().enumerate() {
            prop_assert_eq!(append_synced(&mut wal, batch), expected.len() as u64);
            expected.extend(batch.iter().cloned());
            if n % reopen_every == 0 {
                drop(wal);
                wal = Wal::open(dir.path(), config(segment_bytes)).unwrap();
            }
        }
        drop(wal);
        let wal = Wal::open(dir.path(), config(segment_bytes)).unwrap();
        prop_assert_eq!(wal.next_offset(), expected.len() as u64);
        let got = read_all(&wal.reader());
        prop_assert_eq!(got.len(), expected.len());
        for (n, (got, want)) in got.iter().zip(&expected).enumerate() {
            prop_assert_eq!(got.offset, n as u64);
            prop_assert_eq!((&got.key, &got.value, got.timestamp_ms), (&want.key, &want.value, want.timestamp_ms));
        }
    }

    /// Cutting the last segment at any byte keeps exactly the frames that end before the cut.
    #[test]
    fn a_cut_anywhere_keeps_the_whole_frames_before_it(
        values in proptest::collection::vec(0usize..200, 1..30),
        cut_fraction in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        let records: Vec<Record> = values
            .iter()
            .map(|len| Record { key: Bytes::new(), value: Bytes::from(vec![1u8; *len]), timestamp_ms: 0 })
            .collect();
        append_synced(&mut wal, &records);
        drop(wal);
        let segment = last_segment(dir.path());
        let cut = (file_len(&segment) as f64 * cut_fraction) as u64;
        OpenOptions::new().write(true).open(&segment).unwrap().set_len(cut).unwrap();

        let frame_ends = values.iter().scan(0u64, |end, len| {
            *end += (frame::HEADER_BYTES + frame::FIXED_BODY_BYTES + len) as u64;
            Some(*end)
        });
        let whole = frame_ends.take_while(|end| *end <= cut).count();
        let wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        prop_assert_eq!(wal.next_offset(), whole as u64);
        prop_assert_eq!(read_all(&wal.reader()).len(), whole);
    }
}
