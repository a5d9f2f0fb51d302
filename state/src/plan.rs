//! Turns the pending parts of one topic into one call of the fenced write script: the state hash always, plus
//! the derived structures other consumers read (leaderboards and trending lists as sorted sets, counters and
//! reward progress as hashes), each rebuilt absolutely (`DEL`, then every member) from the part's value.
//!
//! Pure: tested without Redis.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use social_schemas::derived::MessageData;

use crate::keys::StateKeys;
use crate::{StateVersion, keys};

/// The keys and arguments of one script call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScriptCall {
    pub(crate) keys: Vec<String>,
    pub(crate) args: Vec<String>,
}

/// Operands per Redis call at most (an even number: field/value and score/member pairs); Lua's `unpack` has a
/// stack limit of a few thousand values.
const MAX_OPERANDS: usize = 1_000;

/// One Redis call of the script: `name key n operand…`.
struct Op {
    name: &'static str,
    key: usize,
    operands: Vec<String>,
}

struct Builder {
    keys: Vec<String>,
    ops: Vec<Op>,
}

impl Builder {
    /// The 1-based index of `key` in `KEYS`, adding it when new.
    fn key(&mut self, key: String) -> usize {
        match self.keys.iter().position(|k| *k == key) {
            Some(index) => index + 1,
            None => {
                self.keys.push(key);
                self.keys.len()
            }
        }
    }

    fn del(&mut self, key: usize) {
        self.ops.push(Op {
            name: "del",
            key,
            operands: Vec::new(),
        });
    }

    /// Adds operands to the previous call when it is the same command on the same key, else starts a call.
    fn add(&mut self, name: &'static str, key: usize, operands: [String; 2]) {
        match self.ops.last_mut() {
            Some(op) if op.name == name && op.key == key && op.operands.len() < MAX_OPERANDS => {
                op.operands.extend(operands);
            }
            _ => self.ops.push(Op {
                name,
                key,
                operands: operands.into(),
            }),
        }
    }

    fn hset(&mut self, key: usize, field: &str, value: String) {
        self.add("hset", key, [field.to_owned(), value]);
    }

    fn zadd(&mut self, key: usize, score: String, member: String) {
        self.add("zadd", key, [score, member]);
    }

    fn into_call(self, version: StateVersion) -> ScriptCall {
        let operands: usize = self.ops.iter().map(|op| op.operands.len() + 3).sum();
        let mut args = Vec::with_capacity(1 + operands);
        args.push(version.encode());
        for op in self.ops {
            args.push(op.name.to_owned());
            args.push(op.key.to_string());
            args.push(op.operands.len().to_string());
            args.extend(op.operands);
        }
        ScriptCall {
            keys: self.keys,
            args,
        }
    }
}

/// The script call writing `parts` (part -> new value, `None` removes it) of `topic` at `version`: one `HSET` of
/// the state hash with every new part and `_v`, one `HDEL` of the removed parts, and per derived structure a
/// `DEL` and one `HSET` or `ZADD` of all its members.
pub(crate) fn plan(
    keys: &StateKeys,
    topic: &str,
    version: StateVersion,
    parts: &BTreeMap<String, Option<MessageData>>,
) -> ScriptCall {
    let mut builder = Builder {
        keys: Vec::with_capacity(2),
        ops: Vec::with_capacity(2 + parts.len() * 2),
    };
    let state = builder.key(keys.state(topic));
    debug_assert_eq!(state, 1, "the state hash is KEYS[1]");
    let mut removed = Vec::new();
    for (part, value) in parts {
        debug_assert_ne!(part, keys::VERSION_FIELD);
        if value.is_none() {
            removed.push(part.clone());
        }
        derived(&mut builder, keys, topic, part, value.as_ref());
    }
    for chunk in removed.chunks(MAX_OPERANDS) {
        builder.ops.push(Op {
            name: "hdel",
            key: state,
            operands: chunk.to_vec(),
        });
    }
    for (part, value) in parts {
        if let Some(value) = value {
            builder.hset(state, part, value.get().to_owned());
        }
    }
    builder.hset(state, keys::VERSION_FIELD, version.encode());
    builder.into_call(version)
}

/// The derived structure of `(topic, part)`, if it has one, rebuilt from `value` (removed when `None`). A value
/// that does not have the expected shape leaves the structure empty (the state hash still holds it).
fn derived(builder: &mut Builder, keys: &StateKeys, topic: &str, part: &str, value: Option<&MessageData>) {
    if topic.starts_with("leaderboard.") && part == "top" {
        let key = builder.key(keys.leaderboard(topic));
        builder.del(key);
        let board: Board = parse(value);
        for entry in board.top {
            builder.zadd(key, entry.completed.to_string(), entry.user_id);
        }
    } else if topic.starts_with("trending.") && part == "items" {
        let key = builder.key(keys.trending(topic));
        builder.del(key);
        let list: TrendingList = parse(value);
        for item in list.items {
            builder.zadd(key, item.count.to_string(), item.content_id);
        }
    } else if is_user_referrals(topic) && part == "counters" {
        let key = builder.key(keys.counters(topic));
        builder.del(key);
        let counters: CountersPart = parse(value);
        for (field, count) in counters.all_time {
            if count.is_number() {
                builder.hset(key, &field, count.to_string());
            }
        }
    } else if is_user_referrals(topic)
        && let Some(program) = part.strip_prefix("rewardProgress.")
    {
        let key = builder.key(keys.reward(topic, program));
        builder.del(key);
        let Some(progress) = value.and_then(|v| serde_json::from_str::<Progress>(v.get()).ok()) else {
            return;
        };
        builder.hset(key, "completed", progress.completed.to_string());
        let level = progress.tier.map_or(0, |tier| tier.level);
        builder.hset(key, "tierLevel", level.to_string());
        builder.hset(key, "progress", progress.progress.to_string());
        if let Some(next) = progress.next_tier {
            builder.hset(key, "nextThreshold", next.threshold.to_string());
            builder.hset(key, "remaining", next.remaining.to_string());
        }
    }
}

/// The part's value in the shape `T`, or `T::default()` when absent or of another shape.
fn parse<T: for<'de> Deserialize<'de> + Default>(value: Option<&MessageData>) -> T {
    value
        .and_then(|v| serde_json::from_str(v.get()).ok())
        .unwrap_or_default()
}

fn is_user_referrals(topic: &str) -> bool {
    topic.starts_with("user.") && topic.ends_with(".referrals")
}

/// The fields of the operators' payloads that the derived structures use (see `pipeline/src/operator/`).
#[derive(Debug, Default, Deserialize)]
struct Board {
    #[serde(default)]
    top: Vec<BoardEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BoardEntry {
    user_id: String,
    completed: u64,
}

#[derive(Debug, Default, Deserialize)]
struct TrendingList {
    #[serde(default)]
    items: Vec<TrendingItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrendingItem {
    content_id: String,
    count: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountersPart {
    #[serde(default)]
    all_time: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    completed: u64,
    tier: Option<ReachedTier>,
    next_tier: Option<NextTier>,
    progress: f64,
}

#[derive(Debug, Deserialize)]
struct ReachedTier {
    level: u64,
}

#[derive(Debug, Deserialize)]
struct NextTier {
    threshold: u64,
    remaining: u64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(value: Value) -> Option<MessageData> {
        Some(MessageData::from(value))
    }

    fn keys() -> StateKeys {
        StateKeys::new("p:").unwrap_or_else(|e| panic!("{e}"))
    }

    /// The calls of `call`, each as `[name, key index, operand…]`.
    fn ops(call: &ScriptCall) -> Vec<Vec<&str>> {
        let mut args = call.args.iter().skip(1).map(String::as_str);
        let mut ops = Vec::new();
        while let (Some(name), Some(key), Some(n)) = (args.next(), args.next(), args.next()) {
            let n: usize = n.parse().unwrap_or_else(|e| panic!("{e}"));
            let mut op = vec![name, key];
            op.extend(args.by_ref().take(n));
            ops.push(op);
        }
        ops
    }

    #[test]
    fn plain_parts_go_to_the_state_hash_only() {
        let parts = BTreeMap::from([
            ("recent".to_owned(), data(json!([{"testimonialId": "t1"}]))),
            ("gone".to_owned(), None),
        ]);
        let call = plan(&keys(), "testimonials.recent", StateVersion::new(3, 4), &parts);
        assert_eq!(call.keys, vec!["p:state:{testimonials.recent}"]);
        assert_eq!(
            call.args.first().map(String::as_str),
            Some(StateVersion::new(3, 4).encode().as_str())
        );
        let version = StateVersion::new(3, 4).encode();
        assert_eq!(
            ops(&call),
            vec![
                vec!["hdel", "1", "gone"],
                vec![
                    "hset",
                    "1",
                    "recent",
                    r#"[{"testimonialId":"t1"}]"#,
                    "_v",
                    version.as_str()
                ],
            ]
        );
    }

    #[test]
    fn leaderboards_become_sorted_sets_of_their_top_n() {
        let top = json!({"boardId": "daily", "periodStart": "2024-01-01", "top": [
            {"userId": "u2", "position": 1, "completed": 5},
            {"userId": "u1", "position": 2, "completed": 3},
        ]});
        let parts = BTreeMap::from([("top".to_owned(), data(top))]);
        let call = plan(&keys(), "leaderboard.daily", StateVersion::ZERO, &parts);
        assert_eq!(
            call.keys,
            vec!["p:state:{leaderboard.daily}", "p:lb:{leaderboard.daily}"]
        );
        let ops = ops(&call);
        assert_eq!(ops.first(), Some(&vec!["del", "2"]));
        assert_eq!(ops.get(1), Some(&vec!["zadd", "2", "5", "u2", "3", "u1"]));
        assert_eq!(ops.get(2).and_then(|op| op.get(..2)), Some(&["hset", "1"][..]));
        assert_eq!(ops.len(), 3);
    }

    #[test]
    fn counters_and_reward_progress_become_hashes() {
        let counters = json!({"userId": "u1", "allTime": {"clicks": 4, "rewardAmount": 2.5}, "windows": []});
        let progress = json!({"userId": "u1", "programId": "p1", "completed": 3,
            "tier": {"level": 1, "threshold": 2, "rewardAmount": 10.0},
            "nextTier": {"threshold": 5, "rewardAmount": 20.0, "remaining": 2}, "progress": 0.333});
        let parts = BTreeMap::from([
            ("counters".to_owned(), data(counters)),
            ("rewardProgress.p1".to_owned(), data(progress)),
        ]);
        let call = plan(&keys(), "user.u1.referrals", StateVersion::ZERO, &parts);
        assert_eq!(
            call.keys,
            vec![
                "p:state:{user.u1.referrals}",
                "p:counters:{user.u1.referrals}",
                "p:reward:{user.u1.referrals}:p1"
            ]
        );
        let ops = ops(&call);
        assert!(ops.contains(&vec!["hset", "2", "clicks", "4", "rewardAmount", "2.5"]));
        assert!(ops.contains(&vec![
            "hset",
            "3",
            "completed",
            "3",
            "tierLevel",
            "1",
            "progress",
            "0.333",
            "nextThreshold",
            "5",
            "remaining",
            "2"
        ]));
        assert_eq!(
            ops.len(),
            5,
            "del + hset per derived hash, one hset of the state hash"
        );
    }

    #[test]
    fn a_removed_part_removes_its_derived_structure() {
        let parts = BTreeMap::from([("items".to_owned(), None)]);
        let call = plan(&keys(), "trending.1h", StateVersion::ZERO, &parts);
        assert_eq!(
            call.keys,
            vec!["p:state:{trending.1h}", "p:trending:{trending.1h}"]
        );
        assert_eq!(
            ops(&call),
            vec![
                vec!["del", "2"],
                vec!["hdel", "1", "items"],
                vec!["hset", "1", "_v", StateVersion::ZERO.encode().as_str()]
            ]
        );
    }
}
