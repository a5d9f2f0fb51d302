//! Trending content: per content item, exact counts of shares and engagements over sliding windows and an
//! exponentially decayed weighted score. At each tick every window whose top K changed publishes
//! `social.trending.updated` to `trending.{window}` and the output bus, with each item's rank and previous rank.
//!
//! Rankings are recomputed once per step of each window (see `fire`), with exact counts over the covered interval.
//!
//! Ranking: count in the window (descending), then decayed score (descending), then content id. Shares by users
//! hidden by their privacy settings, shares with `metadata.visibility` `friends` or `private`, and engagements on
//! either, are not counted. An item that counted a `profile` share (whatever the type of its first share: ids are
//! free-form) and whose content id is a hidden user is never ranked: when a user whose profile has counts changes
//! visibility, every window is re-ranked at the next tick.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use social_schemas::ContentType;
use social_schemas::derived::MessageData;

use super::config::TrendingWindow;
use super::directory::Directory;
use super::ids::MessageId;
use super::output::{Destination, Emitter, topics};
use crate::window::EventTimeMs;
use crate::window::key::Key;
use crate::window::sliding::{Decayed, SlidingCount};

pub const EVENT_TYPE: &str = "social.trending.updated";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    /// The type of the first share counted (shown with the item).
    content_type: ContentType,
    /// Whether a `profile` share was counted: content ids are free-form, so one item may gather a project's
    /// shares and a profile's under one id, and the item then names the profile's user all the same.
    #[serde(default)]
    profile: bool,
    /// One per configured window, in configuration order.
    counts: Vec<SlidingCount>,
    scores: Vec<Decayed>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Published {
    /// (content id, count) of the last published top K.
    top: Vec<(String, u64)>,
    /// Window lower bound at the last evaluation: when it moves, counts may have dropped.
    lower: EventTimeMs,
    changed: bool,
    /// Re-rank at the next tick whatever the step: a ranked profile's owner changed visibility.
    #[serde(default)]
    forced: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trending {
    items: FxHashMap<Key, Item>,
    published: Vec<Published>,
    /// Tick of the last sweep of empty items.
    swept: EventTimeMs,
}

/// One ranked entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub content_id: String,
    pub content_type: ContentType,
    pub count: u64,
    pub score: f64,
}

impl Item {
    /// A profile's item: its content id is the user whose profile it is.
    fn names_a_user(&self) -> bool {
        self.content_type == ContentType::Profile || self.profile
    }
}

impl Trending {
    pub fn add(
        &mut self,
        windows: &[TrendingWindow],
        content_id: &str,
        kind: ContentType,
        t: EventTimeMs,
        w: f64,
    ) {
        let item = match self.items.get_mut(content_id.as_bytes()) {
            Some(item) => item,
            None => self.items.entry(Key::new(content_id)).or_insert_with(|| Item {
                content_type: kind,
                profile: false,
                counts: vec![SlidingCount::default(); windows.len()],
                scores: vec![Decayed::default(); windows.len()],
            }),
        };
        item.profile |= kind == ContentType::Profile;
        for ((window, count), score) in windows.iter().zip(&mut item.counts).zip(&mut item.scores) {
            count.add(&window.window, t);
            score.add(window.half_life_ms, t, w);
        }
        if self.published.len() != windows.len() {
            self.published.resize_with(windows.len(), Published::default);
        }
        for p in &mut self.published {
            p.changed = true;
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A user's visibility changed: when their profile has counts, every window is re-ranked at the next tick.
    pub fn visibility_changed(&mut self, user: &str) {
        let has_profile = self.items.get(user.as_bytes()).is_some_and(Item::names_a_user);
        if has_profile {
            for published in &mut self.published {
                published.forced = true;
            }
        }
    }

    /// The top `k` of window `index` at `tick` (evicts expired buckets), without the profiles of users for whom
    /// `hidden` holds.
    pub fn top(
        &mut self,
        windows: &[TrendingWindow],
        index: usize,
        tick: EventTimeMs,
        k: usize,
        hidden: &dyn Fn(&str) -> bool,
    ) -> Vec<Ranked> {
        let Some(window) = windows.get(index) else {
            return Vec::new();
        };
        // Candidates borrow their ids; only the top K are copied out.
        let mut ranked: Vec<(u64, f64, &str, ContentType)> = Vec::new();
        for (id, item) in &mut self.items {
            let (Some(counts), Some(score)) = (item.counts.get_mut(index), item.scores.get(index)) else {
                continue;
            };
            let count = counts.evict_and_count(&window.window, tick);
            if count > 0 && !(item.names_a_user() && hidden(id.as_str())) {
                ranked.push((
                    count,
                    score.at(window.half_life_ms, tick),
                    id.as_str(),
                    item.content_type,
                ));
            }
        }
        let order = |a: &(u64, f64, &str, ContentType), b: &(u64, f64, &str, ContentType)| {
            b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then_with(|| a.2.cmp(b.2))
        };
        if ranked.len() > k && k > 0 {
            ranked.select_nth_unstable_by(k - 1, order);
            ranked.truncate(k);
        }
        ranked.sort_by(order);
        ranked.truncate(k);
        ranked
            .into_iter()
            .map(|(count, score, id, content_type)| Ranked {
                content_id: id.to_owned(),
                content_type,
                count,
                score,
            })
            .collect()
    }

    /// Re-ranks the windows that are due: those whose lower bound moved since their last ranking, and with
    /// `changed_only_due` (a tick while input is quiet) also those with changes since it.
    pub fn fire(
        &mut self,
        windows: &[TrendingWindow],
        k: usize,
        tick: EventTimeMs,
        changed_only_due: bool,
        directory: &Directory,
        out: &mut Emitter,
    ) {
        if self.published.len() != windows.len() {
            self.published.resize_with(windows.len(), Published::default);
        }
        for (index, window) in windows.iter().enumerate() {
            let lower = window.window.lower_bound(tick);
            // Re-ranking scans every item, so it happens once per step of the window (when its lower bound moves),
            // not at every tick: `trending.1h` changes at most every minute, `trending.24h` every 30 minutes.
            let due = self.published.get(index).is_some_and(|p| {
                (p.lower != lower && (p.changed || !p.top.is_empty()))
                    || (changed_only_due && p.changed)
                    || p.forced
            });
            if !due {
                continue;
            }
            let top = self.top(windows, index, tick, k, &|user| !directory.is_public(user));
            let Some(published) = self.published.get_mut(index) else {
                continue;
            };
            published.changed = false;
            published.forced = false;
            published.lower = lower;
            let now: Vec<(String, u64)> = top.iter().map(|r| (r.content_id.clone(), r.count)).collect();
            if now == published.top {
                continue;
            }
            let previous: FxHashMap<&str, usize> = published
                .top
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (id.as_str(), i + 1))
                .collect();
            let items: Vec<ItemJson<'_>> = top
                .iter()
                .enumerate()
                .map(|(i, r)| ItemJson {
                    content_id: &r.content_id,
                    content_type: r.content_type,
                    count: r.count,
                    previous_rank: previous.get(r.content_id.as_str()).copied(),
                    rank: i + 1,
                    score: (r.score * 1000.0).round() / 1000.0,
                })
                .collect();
            let data = MessageData::new(&TrendingJson {
                items: &items,
                window: &window.name,
            });
            let topic = topics::trending(&window.name);
            let mut id = MessageId::new("trending").str(&window.name).num(tick);
            if changed_only_due {
                // A regular tick may have ranked this window at the same time already: a distinct id.
                id = id.str("idle");
            }
            let id = id.finish();
            out.snapshot(topic.clone(), "items", Some(data.clone()));
            out.emit(Destination::SseAndBus, topic, id, EVENT_TYPE, tick, data);
            published.top = now;
        }
        // Items with nothing left in any window are dropped (their decayed score is then irrelevant).
        if tick.saturating_sub(self.swept) >= 60 * 60_000 {
            self.swept = tick;
            self.items
                .retain(|_, item| item.counts.iter().any(|c| !c.is_empty()));
        }
    }
}

// Message payloads, keys in sorted order (the order of the `serde_json::Value` objects they replace).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemJson<'a> {
    content_id: &'a str,
    content_type: ContentType,
    count: u64,
    previous_rank: Option<usize>,
    rank: usize,
    score: f64,
}

#[derive(Serialize)]
struct TrendingJson<'a> {
    items: &'a [ItemJson<'a>],
    window: &'a str,
}
