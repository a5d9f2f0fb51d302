//! Fraud signals for the fraud-detection consumer, as `referral.fraud.suspected` on the output bus only:
//! - `click_flood`: more than `click_threshold` clicks from one IP on one referral within a tumbling window
//!   (one signal per referral, IP and window; the clicks beyond the threshold are flagged, see `counters`);
//! - `self_referral`: a conversion or registration whose new user is the referrer.
//!
//! Signals only: nothing is blocked here.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use social_schemas::Event;
use social_schemas::derived::MessageData;

use super::config::FraudConfig;
use super::ids::MessageId;
use super::output::{Destination, Emitter, to_utc};
use crate::window::{EventTimeMs, align_down};

pub const EVENT_TYPE: &str = "referral.fraud.suspected";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fraud {
    /// Window start -> `referral|ip` -> clicks.
    windows: BTreeMap<EventTimeMs, FxHashMap<String, u32>>,
    #[serde(skip)]
    key: String,
}

impl Fraud {
    /// Counts a click; returns whether it is flagged (beyond the threshold).
    pub fn click(
        &mut self,
        config: &FraudConfig,
        referral: &str,
        ip: &str,
        t: EventTimeMs,
        out: &mut Emitter,
    ) -> bool {
        let start = align_down(t, config.window_ms);
        self.key.clear();
        self.key.push_str(referral);
        self.key.push('|');
        self.key.push_str(ip);
        let window = self.windows.entry(start).or_default();
        let count = match window.get_mut(self.key.as_str()) {
            Some(n) => n,
            None => window.entry(self.key.clone()).or_default(),
        };
        *count += 1;
        if *count == config.click_threshold + 1 {
            let id = MessageId::new("fraud-flood")
                .str(referral)
                .str(ip)
                .num(start)
                .finish();
            let data = MessageData::new(&FloodJson {
                kind: "click_flood",
                referral_id: referral,
                source_ip: ip,
                threshold: config.click_threshold,
                window_end: to_utc(start + config.window_ms),
                window_start: to_utc(start),
            });
            out.emit(Destination::Bus, EVENT_TYPE.to_owned(), id, EVENT_TYPE, t, data);
        }
        *count > config.click_threshold
    }

    /// One signal per input event showing it (a registration and a conversion may both show the same one).
    pub fn self_referral(&self, event: &Event, referral: &str, user: &str, out: &mut Emitter) {
        let id = MessageId::new("fraud-self")
            .str(&event.source)
            .str(&event.id)
            .finish();
        let data = MessageData::new(&SelfJson {
            evidence: event.event_type().as_str(),
            kind: "self_referral",
            referral_id: referral,
            user_id: user,
        });
        out.emit(
            Destination::Bus,
            EVENT_TYPE.to_owned(),
            id,
            EVENT_TYPE,
            event.time.timestamp_millis(),
            data,
        );
    }

    /// Forgets windows whose lateness has passed.
    pub fn purge(&mut self, config: &FraudConfig, lateness_ms: i64, tick: EventTimeMs) {
        self.windows
            .retain(|start, _| start + config.window_ms + lateness_ms > tick);
    }

    pub fn len(&self) -> usize {
        self.windows.values().map(|w| w.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

// Message payloads, keys in sorted order (the order of the `serde_json::Value` objects they replace).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FloodJson<'a> {
    kind: &'static str,
    referral_id: &'a str,
    source_ip: &'a str,
    threshold: u32,
    window_end: chrono::DateTime<chrono::Utc>,
    window_start: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SelfJson<'a> {
    evidence: &'a str,
    kind: &'static str,
    referral_id: &'a str,
    user_id: &'a str,
}
