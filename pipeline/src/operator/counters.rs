//! Live referral counters per referrer: all-time, UTC day and ISO week. Coalesced: at most one
//! `referral.counters.updated` per user per tick (to `user.{id}.referrals` and the output bus), carrying the
//! all-time counts and every window result that fired (early, final at the end of the day/week, correction).
//!
//! Flagged clicks (a click flood from one IP on one referral, see `fraud`) are counted in `flaggedClicks`, not in
//! `clicks`. Reward amounts are summed whatever the reward type.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ids::MessageId;
use super::output::{Destination, Emitter, to_utc, topics};
use crate::window::EventTimeMs;
use crate::window::assigner::WindowSpec;
use crate::window::table::{FireMode, WindowedTable};

pub const EVENT_TYPE: &str = "referral.counters.updated";

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferralCounts {
    pub clicks: u64,
    pub flagged_clicks: u64,
    pub conversions_started: u64,
    pub conversions_completed: u64,
    pub rewards: u64,
    pub reward_amount: f64,
}

/// What happened to a referrer's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CounterEvent {
    Click { flagged: bool },
    ConversionStarted,
    ConversionCompleted,
    Reward { amount: f64 },
}

impl ReferralCounts {
    fn apply(&mut self, event: CounterEvent) {
        match event {
            CounterEvent::Click { flagged: false } => self.clicks += 1,
            CounterEvent::Click { flagged: true } => self.flagged_clicks += 1,
            CounterEvent::ConversionStarted => self.conversions_started += 1,
            CounterEvent::ConversionCompleted => self.conversions_completed += 1,
            CounterEvent::Reward { amount } => {
                self.rewards += 1;
                self.reward_amount += amount;
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counters {
    all_time: FxHashMap<String, ReferralCounts>,
    daily: WindowedTable<ReferralCounts>,
    weekly: WindowedTable<ReferralCounts>,
    /// Users whose all-time counts changed since the last tick.
    dirty: FxHashSet<String>,
}

impl Counters {
    pub fn new(lateness_ms: i64) -> Self {
        Counters {
            all_time: FxHashMap::default(),
            daily: WindowedTable::new(WindowSpec::daily(), lateness_ms, true),
            weekly: WindowedTable::new(WindowSpec::weekly(), lateness_ms, true),
            dirty: FxHashSet::default(),
        }
    }

    pub fn apply(&mut self, user: &str, t: EventTimeMs, event: CounterEvent) {
        match self.all_time.get_mut(user) {
            Some(c) => c.apply(event),
            None => self.all_time.entry(user.to_owned()).or_default().apply(event),
        }
        self.daily.update(t, user, |c| c.apply(event));
        self.weekly.update(t, user, |c| c.apply(event));
        if !self.dirty.contains(user) {
            self.dirty.insert(user.to_owned());
        }
    }

    pub fn all_time(&self, user: &str) -> Option<&ReferralCounts> {
        self.all_time.get(user)
    }

    pub fn len(&self) -> usize {
        self.all_time.len() + self.daily.len() + self.weekly.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all_time.is_empty()
    }

    /// Emits one message per user with changes (see [`FireMode`]) at watermark `tick`.
    pub fn fire(&mut self, tick: EventTimeMs, mode: FireMode, out: &mut Emitter) {
        // user -> window reports, sorted by user so the output order does not depend on hashing.
        let mut reports: BTreeMap<String, Vec<(i64, u32, serde_json::Value)>> = BTreeMap::new();
        for (name, table) in [("daily", &mut self.daily), ("weekly", &mut self.weekly)] {
            table.fire(tick, mode, |f| {
                let mut value = serde_json::to_value(f.agg).unwrap_or_default();
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("window".into(), name.into());
                    obj.insert("start".into(), json!(to_utc(f.window.start)));
                    obj.insert("end".into(), json!(to_utc(f.window.end)));
                    obj.insert("status".into(), f.kind.as_str().into());
                    obj.insert("revision".into(), f.revision.into());
                }
                reports
                    .entry(f.key.to_owned())
                    .or_default()
                    .push((f.window.start, f.revision, value));
            });
        }
        if mode == FireMode::Tick {
            for user in self.dirty.drain() {
                reports.entry(user).or_default();
            }
        }
        for (user, windows) in reports {
            let Some(all_time) = self.all_time.get(&user) else {
                continue;
            };
            let mut id = MessageId::new("counters").str(&user).num(tick).num(mode as i64);
            for (start, revision, _) in &windows {
                id = id.num(*start).num(i64::from(*revision));
            }
            let data = json!({
                "userId": user,
                "allTime": all_time,
                "windows": windows.into_iter().map(|(_, _, v)| v).collect::<Vec<_>>(),
            });
            let topic = topics::user_referrals(&user);
            out.snapshot(topic.clone(), "counters", Some(data.clone()));
            out.emit(Destination::SseAndBus, topic, id.finish(), EVENT_TYPE, tick, data);
        }
    }
}
