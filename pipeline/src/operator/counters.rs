//! Live referral counters per referrer: all-time, UTC day and ISO week. Coalesced: at most one
//! `referral.counters.updated` per user per tick (to `user.{id}.referrals` and the output bus), carrying the
//! all-time counts and every window result that fired (early, final at the end of the day/week, correction).
//!
//! Flagged clicks (a click flood from one IP on one referral, see `fraud`) are counted in `flaggedClicks`, not in
//! `clicks`. Reward amounts are summed whatever the reward type.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use social_schemas::derived::MessageData;

use super::ids::MessageId;
use super::output::{Destination, Emitter, TimeText, topics};
use crate::window::EventTimeMs;
use crate::window::assigner::WindowSpec;
use crate::window::key::Key;
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
    all_time: FxHashMap<Key, ReferralCounts>,
    daily: WindowedTable<ReferralCounts>,
    weekly: WindowedTable<ReferralCounts>,
    /// Users whose all-time counts changed since the last tick.
    dirty: FxHashSet<Key>,
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
        match self.all_time.get_mut(user.as_bytes()) {
            Some(c) => c.apply(event),
            None => self.all_time.entry(Key::new(user)).or_default().apply(event),
        }
        self.daily.update(t, user, |c| c.apply(event));
        self.weekly.update(t, user, |c| c.apply(event));
        if !self.dirty.contains(user.as_bytes()) {
            self.dirty.insert(Key::new(user));
        }
    }

    pub fn all_time(&self, user: &str) -> Option<&ReferralCounts> {
        self.all_time.get(user.as_bytes())
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
        let mut reports: BTreeMap<Key, Vec<WindowReport>> = BTreeMap::new();
        let mut times = TimeText::default();
        for (name, table) in [("daily", &mut self.daily), ("weekly", &mut self.weekly)] {
            table.fire(tick, mode, |f| {
                times.add(f.window.start);
                times.add(f.window.end);
                let report = WindowReport {
                    counts: *f.agg,
                    window: name,
                    start: f.window.start,
                    end: f.window.end,
                    status: f.kind.as_str(),
                    revision: f.revision,
                };
                match reports.get_mut(f.key.as_bytes()) {
                    Some(list) => list.push(report),
                    None => {
                        reports.insert(Key::new(f.key), vec![report]);
                    }
                }
            });
        }
        if mode == FireMode::Tick {
            for user in self.dirty.drain() {
                reports.entry(user).or_default();
            }
        }
        let mut windows: Vec<WindowJson<'_>> = Vec::new();
        for (user, reports) in reports {
            let Some(all_time) = self.all_time.get(user.as_bytes()) else {
                continue;
            };
            let user = user.as_str();
            let mut id = MessageId::new("counters").str(user).num(tick).num(mode as i64);
            for r in &reports {
                id = id.num(r.start).num(i64::from(r.revision));
            }
            windows.clear();
            windows.extend(reports.iter().map(|r| WindowJson::new(r, &times)));
            let data = MessageData::new(&CountersJson {
                all_time: CountsJson::from(all_time),
                user_id: user,
                windows: &windows,
            });
            let topic = topics::user_referrals(user);
            out.snapshot(topic.clone(), "counters", Some(data.clone()));
            out.emit(Destination::SseAndBus, topic, id.finish(), EVENT_TYPE, tick, data);
        }
    }
}

/// One window result of a user, before it is written.
struct WindowReport {
    counts: ReferralCounts,
    window: &'static str,
    start: EventTimeMs,
    end: EventTimeMs,
    status: &'static str,
    revision: u32,
}

// Message payloads. Keys are declared in sorted order: the order of a `serde_json::Value` object, in which these
// messages were first built, so their JSON text is unchanged.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CountsJson {
    clicks: u64,
    conversions_completed: u64,
    conversions_started: u64,
    flagged_clicks: u64,
    reward_amount: f64,
    rewards: u64,
}

impl From<&ReferralCounts> for CountsJson {
    fn from(c: &ReferralCounts) -> Self {
        CountsJson {
            clicks: c.clicks,
            conversions_completed: c.conversions_completed,
            conversions_started: c.conversions_started,
            flagged_clicks: c.flagged_clicks,
            reward_amount: c.reward_amount,
            rewards: c.rewards,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WindowJson<'a> {
    clicks: u64,
    conversions_completed: u64,
    conversions_started: u64,
    end: &'a str,
    flagged_clicks: u64,
    revision: u32,
    reward_amount: f64,
    rewards: u64,
    start: &'a str,
    status: &'static str,
    window: &'static str,
}

impl<'a> WindowJson<'a> {
    fn new(r: &WindowReport, times: &'a TimeText) -> Self {
        let c = &r.counts;
        WindowJson {
            clicks: c.clicks,
            conversions_completed: c.conversions_completed,
            conversions_started: c.conversions_started,
            end: times.text(r.end),
            flagged_clicks: c.flagged_clicks,
            revision: r.revision,
            reward_amount: c.reward_amount,
            rewards: c.rewards,
            start: times.text(r.start),
            status: r.status,
            window: r.window,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CountersJson<'a> {
    all_time: CountsJson,
    user_id: &'a str,
    windows: &'a [WindowJson<'a>],
}
