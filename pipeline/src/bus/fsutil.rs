//! File-system helpers of the durable bus: safe file names for user-chosen names, atomic replacement of small
//! files, directory fsync, and positioned reads/writes (which leave the shared file cursor alone, so one handle
//! serves the writer and any number of readers at once).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Encodes a topic or group name as a single, portable path component. Bytes in `[A-Za-z0-9_-]` stay; every
/// other byte becomes `%XX`, so `.`/`..`/`/` can never escape the directory and distinct names never collide.
/// The empty name becomes `%`, which no non-empty name encodes to.
pub(crate) fn encode_name(name: &str) -> String {
    if name.is_empty() {
        return "%".to_string();
    }
    let mut encoded = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Inverse of [`encode_name`]; `None` for anything it cannot have produced.
pub(crate) fn decode_name(encoded: &str) -> Option<String> {
    if encoded == "%" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail.get(..2)?;
            let text = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(text, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    (encode_name(&name) == encoded).then_some(name)
}

/// Makes the entries of `dir` (files created, renamed or deleted in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    // Windows cannot open a directory as a file; NTFS journals metadata itself.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Creates `dir` (and missing parents) and makes each level durable up to and including `root`, which must be
/// an ancestor of `dir`.
pub(crate) fn create_dir_durable(dir: &Path, root: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for level in dir.ancestors() {
        sync_dir(level)?;
        if level == root {
            break;
        }
    }
    Ok(())
}

/// Creates `dir` and any missing parent, and makes each new directory's entry durable: fsyncs every level from
/// `dir` up to the first one that already existed (which holds the entry of the topmost new one).
pub(crate) fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    // Every level up to the root; the empty parent of a relative path's first component is ".".
    let levels: Vec<&Path> = dir
        .ancestors()
        .map(|level| {
            if level.as_os_str().is_empty() {
                Path::new(".")
            } else {
                level
            }
        })
        .collect();
    let existing = levels.iter().position(|level| level.is_dir());
    fs::create_dir_all(dir)?;
    let last = existing.unwrap_or(levels.len().saturating_sub(1));
    for level in levels.iter().take(last + 1) {
        sync_dir(level)?;
    }
    Ok(())
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file, never a mix: write a
/// temporary file next to it, fsync it, rename it over `path`, fsync the directory.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let mut temp_name = file_name.to_os_string();
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);
    {
        let mut file = File::create(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    fs::rename(&temp, path)?;
    sync_dir(dir)
}

/// Fills `buf` from `file` at `position`.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], position: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, position)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let rest = buf.get_mut(done..).unwrap_or_default();
            match std::os::windows::fs::FileExt::seek_read(file, rest, position + done as u64)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                read => done += read,
            }
        }
        Ok(())
    }
}

/// Writes all of `buf` into `file` at `position`.
pub(crate) fn write_all_at(file: &File, buf: &[u8], position: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, position)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let rest = buf.get(done..).unwrap_or_default();
            match std::os::windows::fs::FileExt::seek_write(file, rest, position + done as u64)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                written => done += written,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_directories_and_keeps_existing_ones() {
        let root = tempfile::tempdir().unwrap();
        let nested = root.path().join("a").join("b").join("c");
        create_dir_all_durable(&nested).unwrap();
        assert!(nested.is_dir());
        std::fs::write(nested.join("kept"), b"x").unwrap();
        create_dir_all_durable(&nested).unwrap();
        assert!(nested.join("kept").is_file());
    }

    #[test]
    fn names_round_trip_and_stay_single_components() {
        for name in [
            "social-events",
            "",
            ".",
            "..",
            "a/b",
            "a%b",
            "Ünïcode",
            "with space",
            "%",
        ] {
            let encoded = encode_name(name);
            assert!(
                !encoded.contains('/') && !encoded.contains('.') && !encoded.is_empty(),
                "{encoded}"
            );
            assert_eq!(decode_name(&encoded).as_deref(), Some(name));
        }
        assert_eq!(encode_name("social-events"), "social-events");
        assert_eq!(decode_name("a%2"), None);
        assert_eq!(
            decode_name("a%2f"),
            None,
            "lower-case hex is not what encode_name writes"
        );
        assert_eq!(decode_name("a.b"), None);
    }

    #[test]
    fn atomic_write_replaces_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left behind"
        );
    }
}
