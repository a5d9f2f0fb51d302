//! Committed consumer offsets, per group. In memory for the memory bus; for the durable bus each group also has
//! one small file, `<dir>/<group>.offsets`, replaced atomically on every commit.
//!
//! File format (text, so an operator can read it): a first line `v1`, then one line per partition,
//! `<encoded topic> <partition> <next offset>`, names encoded with [`fsutil::encode_name`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;
use serde::Deserialize;

use super::fsutil::{self, decode_name, encode_name};
use super::util::lock;
use super::{BusError, Offset};

const FORMAT_LINE: &str = "v1";
const EXTENSION: &str = "offsets";

/// A consumer group that must read every record of `topic`: retention waits for its commits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedConsumer {
    pub group: String,
    pub topic: String,
}

impl ProtectedConsumer {
    pub fn new(group: impl Into<String>, topic: impl Into<String>) -> Self {
        ProtectedConsumer {
            group: group.into(),
            topic: topic.into(),
        }
    }
}

/// Where retention must keep records of `topic`'s `partition` from: the lowest offset the protected consumers
/// of the topic committed durably (0 for one that has not yet), `u64::MAX` when none reads the topic. Durably: a
/// commit whose file is still being written, or failed to be, must not let retention delete what a restart would
/// resume from.
pub(crate) fn protected_from(
    offsets: &OffsetStore,
    protected: &[ProtectedConsumer],
    topic: &str,
    partition: u32,
) -> Offset {
    protected
        .iter()
        .filter(|consumer| consumer.topic == topic)
        .map(|consumer| {
            offsets
                .durably_committed(&consumer.group, topic, partition)
                .unwrap_or(0)
        })
        .min()
        .unwrap_or(u64::MAX)
}

#[derive(Default)]
struct Group {
    offsets: Committed,
    /// Bumped by every commit, so that a writer can tell whether a snapshot already on disk covers a commit.
    version: u64,
    /// The offsets of the newest file on disk (of an in-memory store: `offsets`), and the version they were at.
    durable: Committed,
    durable_version: u64,
}

/// Sets `partition` of `topic` to `offset` in `offsets`.
fn set(offsets: &mut Committed, topic: &str, partition: u32, offset: Offset) {
    match offsets.get_mut(topic) {
        Some(partitions) => {
            partitions.insert(partition, offset);
        }
        None => {
            offsets.insert(topic.to_string(), BTreeMap::from([(partition, offset)]));
        }
    }
}

/// A group's committed offsets by topic, then partition: nested, so that a lookup by `&str` allocates nothing (the
/// memory bus looks up its protected consumers on every append).
type Committed = BTreeMap<String, BTreeMap<u32, Offset>>;

pub(crate) struct OffsetStore {
    /// Where group files live; `None` keeps offsets in memory only.
    dir: Option<PathBuf>,
    groups: Mutex<FxHashMap<String, Group>>,
    /// One async lock per group serialises the file writes of that group (held across the blocking write, hence
    /// tokio's mutex); it guards the version last written.
    writers: Mutex<FxHashMap<String, Arc<tokio::sync::Mutex<u64>>>>,
}

impl OffsetStore {
    pub(crate) fn in_memory() -> Self {
        OffsetStore {
            dir: None,
            groups: Mutex::default(),
            writers: Mutex::default(),
        }
    }

    /// Loads every group file under `dir`, creating `dir` when missing. Blocking.
    pub(crate) fn open(dir: &Path, root: &Path) -> Result<Self, BusError> {
        fsutil::create_dir_durable(dir, root)?;
        let mut groups = FxHashMap::default();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|ext| ext.to_str()) != Some(EXTENSION) {
                continue; // e.g. a `.tmp` left by a crash mid-commit: the old file is still whole
            }
            let name = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .and_then(decode_name);
            let Some(name) = name else {
                tracing::warn!(path = %path.display(), "ignoring offsets file with an undecodable name");
                continue;
            };
            let offsets = parse(&fs::read_to_string(&path)?)
                .ok_or_else(|| BusError::Corrupt(format!("unreadable offsets file {}", path.display())))?;
            let group = Group {
                durable: offsets.clone(),
                offsets,
                ..Group::default()
            };
            groups.insert(name, group);
        }
        Ok(OffsetStore {
            dir: Some(dir.to_path_buf()),
            groups: Mutex::new(groups),
            writers: Mutex::default(),
        })
    }

    pub(crate) fn committed(&self, group: &str, topic: &str, partition: u32) -> Option<Offset> {
        let groups = lock(&self.groups);
        groups.get(group)?.offsets.get(topic)?.get(&partition).copied()
    }

    /// [`OffsetStore::committed`] as a restart would find it: the offset in the group's file on disk.
    pub(crate) fn durably_committed(&self, group: &str, topic: &str, partition: u32) -> Option<Offset> {
        let groups = lock(&self.groups);
        groups.get(group)?.durable.get(topic)?.get(&partition).copied()
    }

    /// Records the offset and, for a durable store, returns once a file holding it is on disk. If the write fails
    /// the error is returned, but the in-memory value stays: the next successful commit of the group persists it.
    pub(crate) async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: Offset,
    ) -> Result<(), BusError> {
        let version = {
            let mut groups = lock(&self.groups);
            let entry = groups.entry(group.to_string()).or_default();
            set(&mut entry.offsets, topic, partition, next_offset);
            entry.version += 1;
            if self.dir.is_none() {
                set(&mut entry.durable, topic, partition, next_offset);
                entry.durable_version = entry.version;
            }
            entry.version
        };
        let Some(dir) = &self.dir else { return Ok(()) };
        let writer = Arc::clone(lock(&self.writers).entry(group.to_string()).or_default());
        let mut written_version = writer.lock().await;
        if *written_version >= version {
            return Ok(()); // a commit that queued behind ours already wrote a snapshot including it
        }
        let (snapshot, snapshot_version) = {
            let groups = lock(&self.groups);
            let entry = groups
                .get(group)
                .ok_or_else(|| BusError::Backend("offset group vanished".into()))?;
            (entry.offsets.clone(), entry.version)
        };
        let path = dir.join(format!("{}.{EXTENSION}", encode_name(group)));
        let text = render(&snapshot);
        tokio::task::spawn_blocking(move || fsutil::write_atomic(&path, text.as_bytes()))
            .await
            .map_err(|join| BusError::Io(std::io::Error::other(join)))??;
        *written_version = snapshot_version;
        let mut groups = lock(&self.groups);
        if let Some(entry) = groups.get_mut(group)
            && entry.durable_version < snapshot_version
        {
            entry.durable = snapshot;
            entry.durable_version = snapshot_version;
        }
        Ok(())
    }
}

fn render(offsets: &Committed) -> String {
    let mut text = format!("{FORMAT_LINE}\n");
    for (topic, partitions) in offsets {
        for (partition, offset) in partitions {
            text.push_str(&format!("{} {partition} {offset}\n", encode_name(topic)));
        }
    }
    text
}

fn parse(text: &str) -> Option<Committed> {
    let mut lines = text.lines();
    if lines.next()? != FORMAT_LINE {
        return None;
    }
    let mut offsets = Committed::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let mut fields = line.split(' ');
        let topic = decode_name(fields.next()?)?;
        let partition = fields.next()?.parse().ok()?;
        let offset = fields.next()?.parse().ok()?;
        if fields.next().is_some() {
            return None;
        }
        offsets.entry(topic).or_default().insert(partition, offset);
    }
    Some(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn persists_and_reloads() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("groups");
        let store = OffsetStore::open(&dir, root.path()).unwrap();
        store.commit("g/1", "social events", 3, 42).await.unwrap();
        store.commit("g/1", "social events", 3, 43).await.unwrap();
        store.commit("g/1", "other", 0, 7).await.unwrap();
        store.commit("", "t", 0, 1).await.unwrap();
        let reopened = OffsetStore::open(&dir, root.path()).unwrap();
        assert_eq!(reopened.committed("g/1", "social events", 3), Some(43));
        assert_eq!(reopened.committed("g/1", "other", 0), Some(7));
        assert_eq!(reopened.committed("", "t", 0), Some(1));
        assert_eq!(reopened.committed("g/1", "other", 1), None);
        assert_eq!(reopened.committed("nobody", "other", 0), None);
    }

    #[tokio::test]
    async fn concurrent_commits_end_with_the_latest() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("groups");
        let store = Arc::new(OffsetStore::open(&dir, root.path()).unwrap());
        let tasks: Vec<_> = (0..8u32)
            .map(|partition| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for offset in 1..=20 {
                        store.commit("g", "t", partition, offset).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let reopened = OffsetStore::open(&dir, root.path()).unwrap();
        for partition in 0..8 {
            assert_eq!(reopened.committed("g", "t", partition), Some(20));
        }
    }

    /// Retention goes by the offsets on disk: a commit whose file could not be written does not count for it.
    #[tokio::test]
    async fn retention_follows_the_durable_commits_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("groups");
        let store = OffsetStore::open(&dir, root.path()).unwrap();
        let protected = [ProtectedConsumer::new("g", "t")];
        store.commit("g", "t", 0, 5).await.unwrap();
        assert_eq!(protected_from(&store, &protected, "t", 0), 5);
        // The group's file cannot be replaced (a non-empty directory stands in its place): the commit fails.
        let file = dir.join("g.offsets");
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        std::fs::write(file.join("x"), b"x").unwrap();
        assert!(store.commit("g", "t", 0, 10).await.is_err());
        assert_eq!(store.committed("g", "t", 0), Some(10));
        assert_eq!(protected_from(&store, &protected, "t", 0), 5);
        std::fs::remove_dir_all(&file).unwrap();
        store.commit("g", "t", 0, 11).await.unwrap();
        assert_eq!(protected_from(&store, &protected, "t", 0), 11);
        let reopened = OffsetStore::open(&dir, root.path()).unwrap();
        assert_eq!(protected_from(&reopened, &protected, "t", 0), 11);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("v2\n").is_none());
        assert!(parse("v1\nt x 1\n").is_none());
        assert!(parse("v1\nt 1 1 1\n").is_none());
        assert_eq!(parse("v1\n").map(|offsets| offsets.len()), Some(0));
    }
}
