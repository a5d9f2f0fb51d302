//! Engagement aggregates per share, per content item and per sharer over windows (`social.engagement.updated`
//! on the output bus: early results at ticks, finals at close, corrections), and grouped engagement alerts to the
//! sharer on `user.{id}.social` ("5 new likes"), at most one per share per tick.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use social_schemas::EngagementType;

use super::ids::MessageId;
use super::output::{Destination, Emitter, to_utc, topics};
use crate::window::EventTimeMs;
use crate::window::assigner::WindowSpec;
use crate::window::table::{FireMode, WindowedTable};

pub const EVENT_TYPE: &str = "social.engagement.updated";
pub const ALERT_TYPE: &str = "notification.engagement.alert";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngagementCounts {
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
    pub clicks: u64,
    pub views: u64,
    pub saves: u64,
    pub total: u64,
}

impl EngagementCounts {
    pub fn add(&mut self, kind: EngagementType) {
        let slot = match kind {
            EngagementType::Like => &mut self.likes,
            EngagementType::Comment => &mut self.comments,
            EngagementType::Share => &mut self.shares,
            EngagementType::Click => &mut self.clicks,
            EngagementType::View => &mut self.views,
            EngagementType::Save => &mut self.saves,
        };
        *slot += 1;
        self.total += 1;
    }

    /// "5 new likes, 1 new comment".
    pub fn summary(&self) -> String {
        let parts = [
            (self.likes, "like"),
            (self.comments, "comment"),
            (self.shares, "share"),
            (self.clicks, "click"),
            (self.views, "view"),
            (self.saves, "save"),
        ];
        parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, word)| format!("{n} new {word}{}", if *n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingAlert {
    sharer: String,
    content_id: Option<String>,
    counts: EngagementCounts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engagement {
    /// Keys: `share:{id}`, `content:{id}`, `sharer:{id}`.
    table: WindowedTable<EngagementCounts>,
    /// By share id; sorted so alerts go out in a stable order.
    alerts: BTreeMap<String, PendingAlert>,
    #[serde(skip)]
    key: String,
}

impl Engagement {
    pub fn new(window: WindowSpec, lateness_ms: i64, early: bool) -> Self {
        Engagement {
            table: WindowedTable::new(window, lateness_ms, early),
            alerts: BTreeMap::new(),
            key: String::new(),
        }
    }

    pub fn add(
        &mut self,
        t: EventTimeMs,
        share: &str,
        content: Option<&str>,
        sharer: Option<&str>,
        kind: EngagementType,
    ) {
        for (prefix, id) in [
            ("share:", Some(share)),
            ("content:", content),
            ("sharer:", sharer),
        ] {
            let Some(id) = id else { continue };
            self.key.clear();
            self.key.push_str(prefix);
            self.key.push_str(id);
            self.table.update(t, &self.key, |c| c.add(kind));
        }
        if let Some(sharer) = sharer {
            let pending = match self.alerts.get_mut(share) {
                Some(p) => p,
                None => self
                    .alerts
                    .entry(share.to_owned())
                    .or_insert_with(|| PendingAlert {
                        sharer: sharer.to_owned(),
                        content_id: content.map(str::to_owned),
                        counts: EngagementCounts::default(),
                    }),
            };
            pending.counts.add(kind);
        }
    }

    pub fn len(&self) -> usize {
        self.table.len() + self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn fire(&mut self, tick: EventTimeMs, mode: FireMode, out: &mut Emitter) {
        self.table.fire(tick, mode, |f| {
            let (dimension, id) = f.key.split_once(':').unwrap_or(("share", f.key));
            let message_id = MessageId::new("engagement")
                .str(f.key)
                .num(f.window.start)
                .num(i64::from(f.revision))
                .finish();
            let data = json!({
                "dimension": dimension,
                "id": id,
                "start": to_utc(f.window.start),
                "end": to_utc(f.window.end),
                "status": f.kind.as_str(),
                "revision": f.revision,
                "counts": f.agg,
            });
            out.emit(
                Destination::Bus,
                EVENT_TYPE.to_owned(),
                message_id,
                EVENT_TYPE,
                tick,
                data,
            );
        });
        if mode == FireMode::CorrectionsOnly {
            return;
        }
        for (share, alert) in std::mem::take(&mut self.alerts) {
            let id = MessageId::new("engagement-alert").str(&share).num(tick).finish();
            let data = json!({
                "shareId": share,
                "contentId": alert.content_id,
                "counts": alert.counts,
                "summary": alert.counts.summary(),
            });
            out.emit(
                Destination::SseAndBus,
                topics::user_social(&alert.sharer),
                id,
                ALERT_TYPE,
                tick,
                data,
            );
        }
    }
}
