//! Live ingest tallies for the status page (the same numbers are also exported as metrics).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use social_schemas::EventType;

use super::type_slot;

#[derive(Default)]
pub struct IngestStats {
    accepted_by_type: [AtomicU64; EventType::ALL.len()],
    duplicates: AtomicU64,
    rejected: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestStatsSnapshot {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Accepted events by type, in catalogue order.
    pub accepted_by_type: Vec<(&'static str, u64)>,
}

impl IngestStats {
    pub(super) fn add_accepted(&self, event_type: EventType, count: u64) {
        if let Some(slot) = self.accepted_by_type.get(type_slot(event_type)) {
            slot.fetch_add(count, Ordering::Relaxed);
        }
    }

    pub(super) fn add_duplicates(&self, count: u64) {
        self.duplicates.fetch_add(count, Ordering::Relaxed);
    }

    pub(super) fn add_rejected(&self, count: u64) {
        self.rejected.fetch_add(count, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> IngestStatsSnapshot {
        let accepted_by_type: Vec<(&'static str, u64)> = EventType::ALL
            .iter()
            .zip(&self.accepted_by_type)
            .map(|(event_type, count)| (event_type.as_str(), count.load(Ordering::Relaxed)))
            .collect();
        IngestStatsSnapshot {
            accepted: accepted_by_type.iter().map(|(_, count)| count).sum(),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            accepted_by_type,
        }
    }
}
