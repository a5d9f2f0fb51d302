//! The coalescing buffer between `apply` and the writer: per topic, the latest value of each part and the newest
//! version that touched the topic. Bounded by distinct `(topic, part)` keys, not by updates, so an outage of any
//! length holds at most one value per key. Pure and synchronous: the sink wraps it in a mutex never held across
//! an `.await`.

use std::collections::BTreeMap;
use std::collections::hash_map::{Entry, HashMap};

use social_pipeline::operator::SnapshotUpdate;
use social_schemas::derived::MessageData;

use crate::keys::VERSION_FIELD;
use crate::{StateError, StateVersion};

/// What is waiting to be written for one topic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingTopic {
    /// The newest version whose updates are included: the topic's state at that version is what the parts make.
    pub(crate) version: StateVersion,
    /// Part -> latest value (`None`: remove the part).
    pub(crate) parts: BTreeMap<String, Option<MessageData>>,
}

/// A batch taken by the writer.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) topics: Vec<(String, PendingTopic)>,
    /// The number of `apply` calls the batch covers (all of them up to the take).
    pub(crate) upto: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Buffer {
    topics: HashMap<String, PendingTopic>,
    /// Distinct `(topic, part)` keys in `topics`.
    keys: usize,
    /// Keys taken by the writer and not yet confirmed or given back.
    in_flight: usize,
    /// `apply` calls accepted so far.
    applied: u64,
    last_version: Option<StateVersion>,
}

/// What one `insert` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inserted {
    pub(crate) updates: usize,
    /// Updates that replaced a value still waiting to be written.
    pub(crate) coalesced: usize,
}

impl Buffer {
    /// Keys held (waiting or being written).
    pub(crate) fn buffered_keys(&self) -> usize {
        self.keys + self.in_flight
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.topics.is_empty()
    }

    pub(crate) fn applied(&self) -> u64 {
        self.applied
    }

    /// Adds one batch at `version`. Nothing changes when the batch is refused.
    pub(crate) fn insert(
        &mut self,
        version: StateVersion,
        updates: Vec<SnapshotUpdate>,
    ) -> Result<Inserted, StateError> {
        if let Some(last) = self.last_version
            && version < last
        {
            return Err(StateError::VersionRegression { given: version, last });
        }
        if let Some(update) = updates.iter().find(|u| u.part == VERSION_FIELD) {
            return Err(StateError::InvalidUpdate(format!(
                "part name `{VERSION_FIELD}` is reserved (topic {})",
                update.topic
            )));
        }
        self.last_version = Some(version);
        self.applied += 1;
        let mut inserted = Inserted {
            updates: updates.len(),
            coalesced: 0,
        };
        for update in updates {
            let topic = self.topics.entry(update.topic).or_insert_with(|| PendingTopic {
                version,
                parts: BTreeMap::new(),
            });
            topic.version = topic.version.max(version);
            if topic.parts.insert(update.part, update.value).is_some() {
                inserted.coalesced += 1;
            } else {
                self.keys += 1;
            }
        }
        Ok(inserted)
    }

    /// Takes everything waiting; it stays counted as in flight until [`Buffer::settle`].
    pub(crate) fn take(&mut self) -> Taken {
        debug_assert_eq!(self.in_flight, 0, "one batch in flight at a time");
        self.in_flight = self.keys;
        self.keys = 0;
        Taken {
            topics: self.topics.drain().collect(),
            upto: self.applied,
        }
    }

    /// Ends the batch in flight: `failed` topics come back (for a retry), under any newer values that arrived
    /// meanwhile.
    pub(crate) fn settle(&mut self, failed: Vec<(String, PendingTopic)>) {
        self.in_flight = 0;
        for (name, old) in failed {
            match self.topics.entry(name) {
                Entry::Vacant(slot) => {
                    self.keys += old.parts.len();
                    slot.insert(old);
                }
                Entry::Occupied(mut slot) => {
                    let newer = slot.get_mut();
                    newer.version = newer.version.max(old.version);
                    for (part, value) in old.parts {
                        if let std::collections::btree_map::Entry::Vacant(v) = newer.parts.entry(part) {
                            v.insert(value);
                            self.keys += 1;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn update(topic: &str, part: &str, value: Option<Value>) -> SnapshotUpdate {
        SnapshotUpdate {
            topic: topic.to_owned(),
            part: part.to_owned(),
            value: value.map(MessageData::from),
        }
    }

    fn data(value: Value) -> Option<MessageData> {
        Some(MessageData::from(value))
    }

    fn v(epoch: u64, sequence: u64) -> StateVersion {
        StateVersion::new(epoch, sequence)
    }

    #[test]
    fn keeps_the_latest_value_per_part_and_the_newest_version_per_topic() {
        let mut buffer = Buffer::default();
        let first = buffer.insert(
            v(1, 1),
            vec![update("a", "x", Some(json!(1))), update("a", "y", Some(json!(1)))],
        );
        assert_eq!(
            first,
            Ok(Inserted {
                updates: 2,
                coalesced: 0
            })
        );
        let second = buffer.insert(
            v(1, 2),
            vec![update("a", "x", Some(json!(2))), update("b", "x", None)],
        );
        assert_eq!(
            second,
            Ok(Inserted {
                updates: 2,
                coalesced: 1
            })
        );
        assert_eq!(buffer.buffered_keys(), 3);
        let mut taken = buffer.take();
        taken.topics.sort_by(|l, r| l.0.cmp(&r.0));
        assert_eq!(taken.upto, 2);
        let (_, a) = &taken.topics[0];
        assert_eq!(a.version, v(1, 2));
        assert_eq!(a.parts.get("x"), Some(&data(json!(2))));
        assert_eq!(a.parts.get("y"), Some(&data(json!(1))));
        assert_eq!(taken.topics[1].1.parts.get("x"), Some(&None));
        assert_eq!(buffer.buffered_keys(), 3, "in flight still counts");
        buffer.settle(Vec::new());
        assert_eq!(buffer.buffered_keys(), 0);
    }

    #[test]
    fn failed_batches_come_back_under_newer_values() {
        let mut buffer = Buffer::default();
        buffer
            .insert(
                v(1, 1),
                vec![update("a", "x", Some(json!(1))), update("a", "y", Some(json!(1)))],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let taken = buffer.take();
        buffer
            .insert(v(1, 2), vec![update("a", "x", Some(json!(2)))])
            .unwrap_or_else(|e| panic!("{e}"));
        buffer.settle(taken.topics);
        assert_eq!(buffer.buffered_keys(), 2);
        let again = buffer.take();
        let (_, a) = &again.topics[0];
        assert_eq!(a.version, v(1, 2));
        assert_eq!(a.parts.get("x"), Some(&data(json!(2))), "the newer value wins");
        assert_eq!(a.parts.get("y"), Some(&data(json!(1))), "the older part is kept");
    }

    #[test]
    fn refuses_older_versions_and_the_reserved_part() {
        let mut buffer = Buffer::default();
        buffer
            .insert(v(2, 0), Vec::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            buffer.insert(v(1, 9), vec![update("a", "x", None)]),
            Err(StateError::VersionRegression { .. })
        ));
        assert!(matches!(
            buffer.insert(v(2, 0), vec![update("a", "_v", None)]),
            Err(StateError::InvalidUpdate(_))
        ));
        assert!(!buffer.has_pending());
        assert_eq!(buffer.applied(), 1);
    }
}
