//! Keyed window aggregates: early firings while a window is open, a final result when the watermark passes its
//! end, corrections when late events (within the allowed lateness) change a window already final, and purging
//! once the lateness has passed.
//!
//! Emission order is deterministic: windows oldest first, keys sorted. Hash-map iteration order never leaks
//! into the output (it differs after a restore).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::EventTimeMs;
use super::assigner::{Window, WindowSpec};
use super::key::Key;

/// Why a window result is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FiringKind {
    /// The window is still open; more events may change it.
    Early,
    /// The watermark passed the window's end.
    Final,
    /// A late event changed a window that was already final.
    Correction,
}

impl FiringKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FiringKind::Early => "early",
            FiringKind::Final => "final",
            FiringKind::Correction => "correction",
        }
    }
}

/// One emitted window result.
#[derive(Debug)]
pub struct Firing<'a, A> {
    pub kind: FiringKind,
    pub window: Window,
    pub key: &'a str,
    pub agg: &'a A,
    /// 0 for the first emission of this key in this window, then 1, 2, ...: part of the message id.
    pub revision: u32,
}

/// Which results [`WindowedTable::fire`] emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireMode {
    /// A watermark tick: early results of changed keys, finals of windows that ended, corrections.
    Tick,
    /// Only corrections of final windows (right after a late event, so they are not delayed to the next tick).
    CorrectionsOnly,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry<A> {
    agg: A,
    /// Emissions so far.
    emitted: u32,
    dirty: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WindowState<A> {
    end: EventTimeMs,
    closed: bool,
    entries: FxHashMap<Key, Entry<A>>,
    dirty: Vec<Key>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowedTable<A> {
    spec: WindowSpec,
    lateness_ms: i64,
    /// Whether open windows emit early results at ticks.
    early: bool,
    /// By window start.
    windows: BTreeMap<EventTimeMs, WindowState<A>>,
    /// Largest end of a purged window: windows ending at or before it are gone for good and never re-created.
    purged_through: EventTimeMs,
}

impl<A: Default> WindowedTable<A> {
    pub fn new(spec: WindowSpec, lateness_ms: i64, early: bool) -> Self {
        WindowedTable {
            spec,
            lateness_ms: lateness_ms.max(0),
            early,
            windows: BTreeMap::new(),
            purged_through: EventTimeMs::MIN,
        }
    }

    /// Applies `update` to `key`'s aggregate in every window containing `t` that is still retained. Returns
    /// how many windows were updated (0: every window of `t` was already purged).
    pub fn update(&mut self, t: EventTimeMs, key: &str, mut update: impl FnMut(&mut A)) -> usize {
        let mut updated = 0;
        let watermark_floor = self.purged_through;
        let windows = &mut self.windows;
        self.spec.for_each_window(t, |w| {
            if w.end <= watermark_floor {
                return;
            }
            let state = windows.entry(w.start).or_insert_with(|| WindowState {
                end: w.end,
                closed: false,
                entries: FxHashMap::default(),
                dirty: Vec::new(),
            });
            let entry = match state.entries.get_mut(key.as_bytes()) {
                Some(e) => e,
                None => state.entries.entry(Key::new(key)).or_insert_with(|| Entry {
                    agg: A::default(),
                    emitted: 0,
                    dirty: false,
                }),
            };
            update(&mut entry.agg);
            if !entry.dirty {
                entry.dirty = true;
                state.dirty.push(Key::new(key));
            }
            updated += 1;
        });
        updated
    }

    /// Emits results at watermark `tick` (see [`FireMode`]) and purges windows whose lateness has passed.
    pub fn fire(&mut self, tick: EventTimeMs, mode: FireMode, mut emit: impl FnMut(Firing<'_, A>)) {
        for (&start, state) in self.windows.iter_mut() {
            let window = Window {
                start,
                end: state.end,
            };
            let closing = mode == FireMode::Tick && !state.closed && state.end <= tick;
            if closing {
                state.closed = true;
                let mut keys: Vec<(&Key, &Entry<A>)> = state.entries.iter().collect();
                keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (key, entry) in keys {
                    {
                        emit(Firing {
                            kind: FiringKind::Final,
                            window,
                            key: key.as_str(),
                            agg: &entry.agg,
                            revision: entry.emitted,
                        });
                    }
                }
                for entry in state.entries.values_mut() {
                    entry.emitted += 1;
                    entry.dirty = false;
                }
                state.dirty.clear();
                continue;
            }
            let wanted = if state.closed {
                true
            } else {
                mode == FireMode::Tick && self.early
            };
            if !wanted || state.dirty.is_empty() {
                continue;
            }
            let kind = if state.closed {
                FiringKind::Correction
            } else {
                FiringKind::Early
            };
            let mut dirty = std::mem::take(&mut state.dirty);
            dirty.sort_unstable();
            for key in &dirty {
                if let Some(entry) = state.entries.get_mut(key.as_bytes()) {
                    emit(Firing {
                        kind,
                        window,
                        key: key.as_str(),
                        agg: &entry.agg,
                        revision: entry.emitted,
                    });
                    entry.emitted += 1;
                    entry.dirty = false;
                }
            }
        }
        if mode == FireMode::Tick {
            let lateness = self.lateness_ms;
            let mut purged_through = self.purged_through;
            self.windows.retain(|_, s| {
                let keep = !(s.closed && s.end.saturating_add(lateness) <= tick);
                if !keep {
                    purged_through = purged_through.max(s.end);
                }
                keep
            });
            self.purged_through = purged_through;
        }
    }

    /// Number of (window, key) entries held.
    pub fn len(&self) -> usize {
        self.windows.values().map(|s| s.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The aggregate of `key` in the retained window starting at `start`.
    pub fn get(&self, start: EventTimeMs, key: &str) -> Option<&A> {
        self.windows
            .get(&start)?
            .entries
            .get(key.as_bytes())
            .map(|e| &e.agg)
    }

    /// Every retained (window, key, aggregate), windows oldest first, keys in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Window, &str, &A)> {
        self.windows.iter().flat_map(|(&start, s)| {
            s.entries
                .iter()
                .map(move |(k, e)| (Window { start, end: s.end }, k.as_str(), &e.agg))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(
        t: &mut WindowedTable<u32>,
        tick: i64,
        mode: FireMode,
    ) -> Vec<(FiringKind, i64, String, u32, u32)> {
        let mut v = Vec::new();
        t.fire(tick, mode, |f| {
            v.push((f.kind, f.window.start, f.key.to_owned(), *f.agg, f.revision))
        });
        v
    }

    #[test]
    fn early_final_correction_purge() {
        let mut t = WindowedTable::<u32>::new(
            WindowSpec::Tumbling {
                size_ms: 10,
                offset_ms: 0,
            },
            5,
            true,
        );
        t.update(1, "b", |a| *a += 1);
        t.update(2, "a", |a| *a += 1);
        assert_eq!(
            collect(&mut t, 5, FireMode::Tick),
            vec![
                (FiringKind::Early, 0, "a".into(), 1, 0),
                (FiringKind::Early, 0, "b".into(), 1, 0)
            ]
        );
        t.update(3, "a", |a| *a += 1);
        assert_eq!(
            collect(&mut t, 10, FireMode::Tick),
            vec![
                (FiringKind::Final, 0, "a".into(), 2, 1),
                (FiringKind::Final, 0, "b".into(), 1, 1)
            ]
        );
        // Late but within lateness: a correction, emitted at once.
        t.update(4, "b", |a| *a += 1);
        assert_eq!(
            collect(&mut t, 12, FireMode::CorrectionsOnly),
            vec![(FiringKind::Correction, 0, "b".into(), 2, 2)]
        );
        assert!(collect(&mut t, 15, FireMode::Tick).is_empty());
        assert!(t.is_empty(), "purged at end + lateness");
    }
}
