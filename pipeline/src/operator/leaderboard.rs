//! Leaderboards of completed referrals: `daily`, `weekly` (ISO weeks), `monthly` (UTC calendar months) and
//! `all-time`, each period starting empty on its UTC boundary. At each tick, a board whose top N changed
//! publishes the changes as `referral.leaderboard.updated` in the spec's payload shape (`boardId`,
//! `changes: [{userId, position, delta}]`, each change also with `completed`, the user's completed referrals in the
//! period, and `size`, the number of rows the top N now has) to `leaderboard.{board}` and the output bus. A row
//! changes when its user moved or when their count changed without a move (`delta` 0), so a client that applies the
//! changes to the last snapshot and keeps the first `size` positions holds the published top N, counts included
//! (`size` shrinks when a user hidden by their privacy settings leaves a board with fewer than N visible users: a
//! message is published for that alone).
//!
//! Ranking: more completed referrals first; ties broken by user id (ascending), so the order never depends on
//! arrival. `delta` is the previous position minus the new one (positive: moved up); an entrant counts as coming
//! from position N + 1. A late correction of a closed period is published with `boardId` `{board}.{YYYY-MM-DD}`
//! (the period's first day). Users hidden by their privacy settings are not ranked at all.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use social_schemas::derived::MessageData;

use super::directory::Directory;
use super::ids::MessageId;
use super::output::{Destination, Emitter, topics};
use crate::window::EventTimeMs;
use crate::window::assigner::{WindowSpec, utc_date};
use crate::window::table::FireMode;

pub const EVENT_TYPE: &str = "referral.leaderboard.updated";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Period {
    end: EventTimeMs,
    counts: FxHashMap<String, u32>,
    /// Visible users by rank; rebuilt from `counts` and privacy on restore.
    #[serde(skip)]
    ranked: BTreeSet<(Reverse<u32>, String)>,
    /// Top N as last published.
    published: Vec<String>,
    /// The completed counts of `published`, in its order (empty in a checkpoint written before they were kept:
    /// then only moves are compared until the next publication).
    #[serde(default)]
    published_completed: Vec<u32>,
    dirty: bool,
    revision: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Board {
    name: String,
    spec: WindowSpec,
    periods: BTreeMap<EventTimeMs, Period>,
    purged_through: EventTimeMs,
    /// Start of the period last published as the board's snapshot.
    snapshot_start: Option<EventTimeMs>,
}

/// The boards, each published on `leaderboard.{board}`.
pub const BOARDS: [&str; 4] = ["daily", "weekly", "monthly", "all-time"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Leaderboards {
    boards: Vec<Board>,
    top_n: usize,
    lateness_ms: i64,
}

impl Leaderboards {
    pub fn new(top_n: usize, lateness_ms: i64) -> Self {
        let board = |name: &str, spec| Board {
            name: name.to_owned(),
            spec,
            periods: BTreeMap::new(),
            purged_through: EventTimeMs::MIN,
            snapshot_start: None,
        };
        let [daily, weekly, monthly, all_time] = BOARDS;
        Leaderboards {
            boards: vec![
                board(daily, WindowSpec::daily()),
                board(weekly, WindowSpec::weekly()),
                board(monthly, WindowSpec::CalendarMonth),
                board(all_time, WindowSpec::Global),
            ],
            top_n: top_n.max(1),
            lateness_ms,
        }
    }

    /// One more completed referral for `user` at `t`.
    pub fn add(&mut self, user: &str, t: EventTimeMs, visible: bool) {
        for board in &mut self.boards {
            let w = board.spec.window_of(t);
            if w.end <= board.purged_through {
                continue;
            }
            let period = board.periods.entry(w.start).or_insert_with(|| Period {
                end: w.end,
                ..Period::default()
            });
            let count = period.counts.entry(user.to_owned()).or_default();
            if visible {
                period.ranked.remove(&(Reverse(*count), user.to_owned()));
                period.ranked.insert((Reverse(*count + 1), user.to_owned()));
            }
            *count += 1;
            period.dirty = true;
        }
    }

    /// Hides or shows a user on every board (privacy change). Returns whether a snapshot may show the user: a
    /// published top N held them, or they are hidden from a ranking (a snapshot refreshed since the last tick is
    /// built from the ranking, not from what was published). The snapshots must then be refreshed at once.
    pub fn set_visible(&mut self, user: &str, visible: bool) -> bool {
        let mut was_published = false;
        for period in self.boards.iter_mut().flat_map(|b| b.periods.values_mut()) {
            if let Some(&count) = period.counts.get(user) {
                let entry = (Reverse(count), user.to_owned());
                let changed = if visible {
                    period.ranked.insert(entry)
                } else {
                    period.ranked.remove(&entry)
                };
                period.dirty |= changed;
                was_published |= period.published.iter().any(|u| u == user) || (changed && !visible);
            }
        }
        was_published
    }

    /// Rebuilds the rankings after a restore.
    pub fn rebuild(&mut self, directory: &Directory) {
        for period in self.boards.iter_mut().flat_map(|b| b.periods.values_mut()) {
            period.ranked = period
                .counts
                .iter()
                .filter(|(user, _)| directory.is_public(user))
                .map(|(user, count)| (Reverse(*count), user.clone()))
                .collect();
        }
    }

    pub fn len(&self) -> usize {
        self.boards
            .iter()
            .flat_map(|b| b.periods.values())
            .map(|p| p.counts.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Current top N of `board` (its period containing `at`), for tests and snapshots.
    pub fn top(&self, board: &str, at: EventTimeMs) -> Vec<(String, u32)> {
        let Some(b) = self.boards.iter().find(|b| b.name == board) else {
            return Vec::new();
        };
        let start = b.spec.window_of(at).start;
        b.periods.get(&start).map_or_else(Vec::new, |p| {
            p.ranked
                .iter()
                .take(self.top_n)
                .map(|(Reverse(n), u)| (u.clone(), *n))
                .collect()
        })
    }

    pub fn fire(&mut self, tick: EventTimeMs, mode: FireMode, out: &mut Emitter) {
        let top_n = self.top_n;
        for board in &mut self.boards {
            let current = board.spec.window_of(tick.saturating_sub(1)).start;
            for (&start, period) in board.periods.iter_mut() {
                let closed = period.end <= tick;
                if !period.dirty || (mode == FireMode::CorrectionsOnly && !closed) {
                    continue;
                }
                period.dirty = false;
                let ranked: Vec<(u32, &str)> = period
                    .ranked
                    .iter()
                    .take(top_n)
                    .map(|(Reverse(n), u)| (*n, u.as_str()))
                    .collect();
                let changes = rank_changes(&period.published, &period.published_completed, &ranked, top_n);
                let top: Vec<String> = ranked.iter().map(|(_, u)| (*u).to_owned()).collect();
                let top_completed: Vec<u32> = ranked.iter().map(|(n, _)| *n).collect();
                let board_id = if closed {
                    format!("{}.{}", board.name, utc_date(start))
                } else {
                    board.name.clone()
                };
                if !changes.is_empty() || top.len() < period.published.len() {
                    let id = MessageId::new("leaderboard")
                        .str(&board_id)
                        .num(start)
                        .num(i64::from(period.revision))
                        .finish();
                    period.revision += 1;
                    let data = MessageData::new(&ChangesJson {
                        board_id: &board_id,
                        changes: &changes,
                        size: top.len(),
                    });
                    out.emit(
                        Destination::SseAndBus,
                        topics::leaderboard(&board.name),
                        id,
                        EVENT_TYPE,
                        tick,
                        data,
                    );
                }
                period.published = top;
                period.published_completed = top_completed;
                if start == current {
                    out.snapshot(
                        topics::leaderboard(&board.name),
                        "top",
                        Some(snapshot(&board.name, start, period, top_n)),
                    );
                    board.snapshot_start = Some(start);
                }
            }
            if mode == FireMode::Tick && board.snapshot_start != Some(current) {
                // A new period began with nothing in it yet: the board is empty again.
                let empty = Period::default();
                let period = board.periods.get(&current).unwrap_or(&empty);
                out.snapshot(
                    topics::leaderboard(&board.name),
                    "top",
                    Some(snapshot(&board.name, current, period, top_n)),
                );
                board.snapshot_start = Some(current);
            }
            if mode == FireMode::Tick {
                let lateness = self.lateness_ms;
                let purged = &mut board.purged_through;
                board.periods.retain(|_, p| {
                    let keep = p.end.saturating_add(lateness) > tick;
                    if !keep {
                        *purged = (*purged).max(p.end);
                    }
                    keep
                });
            }
        }
    }

    /// Republishes the snapshot of every board's current period (after a privacy change).
    pub fn refresh_snapshots(&mut self, out: &mut Emitter) {
        let top_n = self.top_n;
        for board in &self.boards {
            let current = board
                .snapshot_start
                .and_then(|start| Some((start, board.periods.get(&start)?)));
            if let Some((start, period)) = current {
                out.snapshot(
                    topics::leaderboard(&board.name),
                    "top",
                    Some(snapshot(&board.name, start, period, top_n)),
                );
            }
        }
    }
}

/// The rows of `after` (completed count and user, by rank) whose position or count differs from `before` (users
/// by rank, with their counts in `before_completed` when known).
fn rank_changes<'a>(
    before: &[String],
    before_completed: &[u32],
    after: &[(u32, &'a str)],
    top_n: usize,
) -> Vec<ChangeJson<'a>> {
    let old: FxHashMap<&str, (usize, Option<u32>)> = before
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), (i + 1, before_completed.get(i).copied())))
        .collect();
    after
        .iter()
        .enumerate()
        .filter_map(|(i, &(completed, user))| {
            let position = i + 1;
            let (previous, previous_completed) = old.get(user).copied().unwrap_or((top_n + 1, None));
            let count_changed = previous_completed.is_some_and(|n| n != completed);
            (previous != position || count_changed).then_some(ChangeJson {
                completed,
                delta: previous as i64 - position as i64,
                position,
                user_id: user,
            })
        })
        .collect()
}

fn snapshot(board: &str, start: EventTimeMs, period: &Period, top_n: usize) -> MessageData {
    let top: Vec<TopJson<'_>> = period
        .ranked
        .iter()
        .zip(1..)
        .take(top_n)
        .map(|((Reverse(n), u), position)| TopJson {
            completed: *n,
            position,
            user_id: u,
        })
        .collect();
    let period_start = (start != EventTimeMs::MIN).then(|| utc_date(start));
    MessageData::new(&SnapshotJson {
        board_id: board,
        period_start,
        top,
    })
}

// Message payloads, keys in sorted order (the order of the `serde_json::Value` objects they replace).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeJson<'a> {
    completed: u32,
    delta: i64,
    position: usize,
    user_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangesJson<'a> {
    board_id: &'a str,
    changes: &'a [ChangeJson<'a>],
    size: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TopJson<'a> {
    completed: u32,
    position: usize,
    user_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotJson<'a> {
    board_id: &'a str,
    period_start: Option<String>,
    top: Vec<TopJson<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_changes_give_moved_users_with_their_counts() {
        let before = vec!["a".to_owned(), "b".to_owned()];
        // `c` enters at 1, `a` drops to 2, `b` drops out of the top 2.
        let after = [(5, "c"), (4, "a")];
        let changes = serde_json::to_value(rank_changes(&before, &[4, 3], &after, 2)).unwrap_or_default();
        assert_eq!(
            changes,
            serde_json::json!([
                {"completed": 5, "delta": 2, "position": 1, "userId": "c"},
                {"completed": 4, "delta": -1, "position": 2, "userId": "a"},
            ])
        );
    }

    #[test]
    fn a_count_that_changes_without_a_move_is_a_change_with_delta_zero() {
        let before = vec!["a".to_owned(), "b".to_owned()];
        let changes = serde_json::to_value(rank_changes(&before, &[4, 3], &[(9, "a"), (3, "b")], 2))
            .unwrap_or_default();
        assert_eq!(
            changes,
            serde_json::json!([{"completed": 9, "delta": 0, "position": 1, "userId": "a"}])
        );
        assert!(rank_changes(&before, &[4, 3], &[(4, "a"), (3, "b")], 2).is_empty());
        // Counts not kept (a checkpoint from before they were): only moves are changes.
        assert!(rank_changes(&before, &[], &[(9, "a"), (8, "b")], 2).is_empty());
    }

    /// The `leaderboard.all-time` messages of `out`, as JSON.
    fn all_time(out: &Emitter) -> Vec<serde_json::Value> {
        out.outputs
            .iter()
            .filter(|o| o.message.topic == "leaderboard.all-time")
            .map(|o| o.message.data.to_value())
            .collect()
    }

    #[test]
    fn a_user_hidden_from_a_short_board_shrinks_its_size() {
        let mut boards = Leaderboards::new(3, 0);
        let t = 1_767_225_600_000;
        boards.add("a", t, true);
        boards.add("a", t, true);
        boards.add("b", t, true);
        let mut out = Emitter::default();
        boards.fire(t + 1_000, FireMode::Tick, &mut out);
        let first = all_time(&out);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["size"], 2);

        // `b` hides: nobody moves, yet the board has one row fewer, and a message says so.
        assert!(boards.set_visible("b", false));
        let mut out = Emitter::default();
        boards.fire(t + 2_000, FireMode::Tick, &mut out);
        let second = all_time(&out);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0]["changes"], serde_json::json!([]));
        assert_eq!(second[0]["size"], 1);

        // Nothing changed since: nothing published.
        let mut out = Emitter::default();
        boards.fire(t + 3_000, FireMode::Tick, &mut out);
        assert!(all_time(&out).is_empty());
    }
}
