//! Reward progress per user and program against the tiered thresholds of the program configuration, as
//! `referral.reward.progress` (coalesced per tick) to `user.{id}.referrals` and the output bus. A change of a
//! program's configuration is announced on `program.{programId}.updates`.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use serde_json::json;
use social_schemas::derived::MessageData;

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
            let data = MessageData::new(&progress(user, program, *count, programs.tiers(program)));
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
            let data = MessageData::from(json!({ "programId": program, "tiers": config.tiers }));
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

fn progress<'a>(user: &'a str, program: &'a str, completed: u32, tiers: &[Tier]) -> ProgressJson<'a> {
    let reached = tiers.iter().rposition(|t| t.threshold <= completed);
    let next = tiers.iter().find(|t| t.threshold > completed);
    let base = reached.and_then(|i| tiers.get(i)).map_or(0, |t| t.threshold);
    let fraction = next.map_or(1.0, |n| {
        f64::from(completed - base) / f64::from(n.threshold.saturating_sub(base).max(1))
    });
    ProgressJson {
        completed,
        next_tier: next.map(|t| NextTierJson {
            remaining: t.threshold - completed,
            reward_amount: t.reward_amount,
            threshold: t.threshold,
        }),
        program_id: program,
        progress: fraction,
        tier: reached.and_then(|i| {
            tiers.get(i).map(|t| TierJson {
                level: i + 1,
                reward_amount: t.reward_amount,
                threshold: t.threshold,
            })
        }),
        user_id: user,
    }
}

// Message payloads, keys in sorted order (the order of the `serde_json::Value` objects they replace).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProgressJson<'a> {
    completed: u32,
    next_tier: Option<NextTierJson>,
    program_id: &'a str,
    progress: f64,
    tier: Option<TierJson>,
    user_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TierJson {
    level: usize,
    reward_amount: f64,
    threshold: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NextTierJson {
    remaining: u32,
    reward_amount: f64,
    threshold: u32,
}
