//! Engagement aggregates per share, per content item and per sharer over windows (`social.engagement.updated`
//! on the output bus: early results at ticks, finals at close, corrections), and grouped engagement alerts to the
//! sharer on `user.{id}.social` ("5 new likes"), at most one per share per tick.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use social_schemas::EngagementType;
use social_schemas::derived::MessageData;

use super::ids::MessageId;
use super::output::{Destination, Emitter, TimeText, topics};
use crate::window::EventTimeMs;
use crate::window::assigner::WindowSpec;
use crate::window::key::Key;
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
        let mut text = String::with_capacity(32);
        for (n, word) in parts.iter().filter(|(n, _)| *n > 0) {
            if !text.is_empty() {
                text.push_str(", ");
            }
            let _ = write!(text, "{n} new {word}");
            if *n != 1 {
                text.push('s');
            }
        }
        text
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingAlert {
    sharer: Key,
    content_id: Option<Key>,
    counts: EngagementCounts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engagement {
    /// Keys: `share:{id}`, `content:{id}`, `sharer:{id}`.
    table: WindowedTable<EngagementCounts>,
    /// By share id; sorted so alerts go out in a stable order.
    alerts: BTreeMap<Key, PendingAlert>,
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

    /// The share's count, and the content's when known.
    pub fn add_share(&mut self, t: EventTimeMs, share: &str, content: Option<&str>, kind: EngagementType) {
        self.count(t, "share:", share, kind);
        if let Some(content) = content {
            self.count(t, "content:", content, kind);
        }
    }

    /// The content's count alone (an engagement whose share came later told the content).
    pub fn add_content(&mut self, t: EventTimeMs, content: &str, kind: EngagementType) {
        self.count(t, "content:", content, kind);
    }

    /// The parts that need the share's sharer: the sharer's count and the grouped alert.
    pub fn add_sharer(
        &mut self,
        t: EventTimeMs,
        share: &str,
        content: Option<&str>,
        sharer: &str,
        kind: EngagementType,
    ) {
        self.count(t, "sharer:", sharer, kind);
        let pending = match self.alerts.get_mut(share.as_bytes()) {
            Some(p) => p,
            None => self
                .alerts
                .entry(Key::new(share))
                .or_insert_with(|| PendingAlert {
                    sharer: Key::new(sharer),
                    content_id: content.map(Key::new),
                    counts: EngagementCounts::default(),
                }),
        };
        pending.counts.add(kind);
    }

    fn count(&mut self, t: EventTimeMs, dimension: &str, id: &str, kind: EngagementType) {
        self.key.clear();
        self.key.push_str(dimension);
        self.key.push_str(id);
        self.table.update(t, &self.key, |c| c.add(kind));
    }

    pub fn len(&self) -> usize {
        self.table.len() + self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Emits what `mode` asks for at `tick`, and the grouped alerts (not with [`FireMode::CorrectionsOnly`]).
    /// `idle`: an idle flush's tick, which may come at the time of a regular tick that alerted already.
    pub fn fire(&mut self, tick: EventTimeMs, mode: FireMode, idle: bool, out: &mut Emitter) {
        let mut times = TimeText::default();
        self.table.fire(tick, mode, |f| {
            let (dimension, id) = f.key.split_once(':').unwrap_or(("share", f.key));
            times.add(f.window.start);
            times.add(f.window.end);
            let message_id = MessageId::new("engagement")
                .str(f.key)
                .num(f.window.start)
                .num(i64::from(f.revision))
                .finish();
            let data = MessageData::new(&WindowJson {
                counts: CountsJson::from(f.agg),
                dimension,
                end: times.text(f.window.end),
                id,
                revision: f.revision,
                start: times.text(f.window.start),
                status: f.kind.as_str(),
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
            let mut id = MessageId::new("engagement-alert").str(share.as_str()).num(tick);
            if idle {
                // Distinct from the alert a regular tick at the same time may have sent.
                id = id.str("idle");
            }
            let id = id.finish();
            let data = MessageData::new(&AlertJson {
                content_id: alert.content_id.as_ref().map(Key::as_str),
                counts: CountsJson::from(&alert.counts),
                share_id: share.as_str(),
                summary: alert.counts.summary(),
            });
            out.emit(
                Destination::SseAndBus,
                topics::user_social(alert.sharer.as_str()),
                id,
                ALERT_TYPE,
                tick,
                data,
            );
        }
    }
}

// Message payloads, keys in sorted order (the order of the `serde_json::Value` objects they replace).

#[derive(Serialize)]
struct CountsJson {
    clicks: u64,
    comments: u64,
    likes: u64,
    saves: u64,
    shares: u64,
    total: u64,
    views: u64,
}

impl From<&EngagementCounts> for CountsJson {
    fn from(c: &EngagementCounts) -> Self {
        CountsJson {
            clicks: c.clicks,
            comments: c.comments,
            likes: c.likes,
            saves: c.saves,
            shares: c.shares,
            total: c.total,
            views: c.views,
        }
    }
}

#[derive(Serialize)]
struct WindowJson<'a> {
    counts: CountsJson,
    dimension: &'a str,
    end: &'a str,
    id: &'a str,
    revision: u32,
    start: &'a str,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertJson<'a> {
    content_id: Option<&'a str>,
    counts: CountsJson,
    share_id: &'a str,
    summary: String,
}
