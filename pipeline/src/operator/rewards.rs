//! Reward progress per user and program against the tiered thresholds of the program configuration, as
//! `referral.reward.progress` (coalesced per tick) to `user.{id}.referrals` and the output bus. A change of a
//! program's configuration is announced on `program.{programId}.updates`.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::{ProgramsConfig, Tier};
use super::ids::MessageId;
use super::output::{Destination, Emitter, topics};
use crate::window::EventTimeMs;

pub const EVENT_TYPE: &str = "referral.reward.progress";
pub const PROGRAM_EVENT_TYPE: &str = "referral.program.updated";

/// Separates user and program in state keys; identifiers never contain it.
const SEP: char = '|';

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RewardProgress {
    /// `user|program` -> completed referrals.
    completed: FxHashMap<String, u32>,
    dirty: FxHashSet<String>,
    /// Program -> id of the configuration last announced.
    announced: BTreeMap<String, String>,
}

impl RewardProgress {
    pub fn completed(&mut self, user: &str, program: &str) {
        let key = format!("{user}{SEP}{program}");
        *self.completed.entry(key.clone()).or_default() += 1;
        self.dirty.insert(key);
    }

    pub fn len(&self) -> usize {
        self.completed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.completed.is_empty()
    }

    pub fn fire(&mut self, tick: EventTimeMs, programs: &ProgramsConfig, out: &mut Emitter) {
        let mut keys: Vec<String> = self.dirty.drain().collect();
        keys.sort_unstable();
        for key in keys {
            let (Some(count), Some((user, program))) = (self.completed.get(&key), key.split_once(SEP)) else {
                continue;
            };
            let data = progress(user, program, *count, programs.tiers(program));
            let topic = topics::user_referrals(user);
            let id = MessageId::new("rewards")
                .str(&key)
                .num(i64::from(*count))
                .finish();
            out.snapshot(
                topic.clone(),
                &format!("rewardProgress.{program}"),
                Some(data.clone()),
            );
            out.emit(Destination::SseAndBus, topic, id, EVENT_TYPE, tick, data);
        }
    }

    /// Announces every configured program whose configuration differs from the one last announced.
    pub fn announce(&mut self, programs: &ProgramsConfig, time: EventTimeMs, out: &mut Emitter) {
        for (program, config) in &programs.programs {
            let body = serde_json::to_string(config).unwrap_or_default();
            let id = MessageId::new("program").str(program).str(&body).finish();
            if self.announced.get(program) == Some(&id) {
                continue;
            }
            let data = json!({ "programId": program, "tiers": config.tiers });
            let topic = topics::program_updates(program);
            out.snapshot(topic.clone(), "rules", Some(data.clone()));
            out.emit(
                Destination::SseAndBus,
                topic,
                id.clone(),
                PROGRAM_EVENT_TYPE,
                time,
                data,
            );
            self.announced.insert(program.clone(), id);
        }
    }
}

fn progress(user: &str, program: &str, completed: u32, tiers: &[Tier]) -> serde_json::Value {
    let reached = tiers.iter().rposition(|t| t.threshold <= completed);
    let next = tiers.iter().find(|t| t.threshold > completed);
    let base = reached.and_then(|i| tiers.get(i)).map_or(0, |t| t.threshold);
    let fraction = next.map_or(1.0, |n| {
        f64::from(completed - base) / f64::from(n.threshold.saturating_sub(base).max(1))
    });
    json!({
        "userId": user,
        "programId": program,
        "completed": completed,
        "tier": reached.and_then(|i| tiers.get(i).map(|t| json!({
            "level": i + 1, "threshold": t.threshold, "rewardAmount": t.reward_amount,
        }))),
        "nextTier": next.map(|t| json!({
            "threshold": t.threshold, "rewardAmount": t.reward_amount, "remaining": t.threshold - completed,
        })),
        "progress": fraction,
    })
}
