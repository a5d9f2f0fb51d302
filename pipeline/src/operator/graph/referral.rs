//! The referral side of the graph: attribution, counters, reward progress, leaderboards, fraud signals and the
//! notifications that follow referrals. It reads and keeps its own [`Directory`] (codes, who referred whom,
//! privacy); shares and testimonial authors live on the social side.

use social_schemas::{Event, Payload};

use super::super::config::OperatorConfig;
use super::super::counters::{CounterEvent, Counters};
use super::super::directory::{CodeInfo, Directory};
use super::super::fraud::Fraud;
use super::super::leaderboard::Leaderboards;
use super::super::metrics::{OperatorKind, ProcessedCounts};
use super::super::notifications;
use super::super::output::Emitter;
use super::super::rewards::RewardProgress;
use super::super::waiting::{Waiting, order_stamp};
use super::UNKNOWN_PROGRAM;
use crate::window::EventTimeMs;
use crate::window::key::Key;
use crate::window::table::FireMode;

#[derive(Debug, Clone)]
pub(crate) struct ReferralSide {
    pub(crate) directory: Directory,
    pub(crate) counters: Counters,
    pub(crate) rewards: RewardProgress,
    pub(crate) leaderboards: Leaderboards,
    pub(crate) fraud: Fraud,
    /// Registrations, clicks and conversion starts read before their code (late).
    pub(crate) waiting: Waiting,
    pub(crate) processed: ProcessedCounts,
}

impl ReferralSide {
    pub(crate) fn new(config: &OperatorConfig) -> Self {
        let lateness = config.allowed_lateness_ms;
        ReferralSide {
            directory: Directory::default(),
            counters: Counters::new(lateness),
            rewards: RewardProgress::default(),
            leaderboards: Leaderboards::new(config.leaderboard_top_n, lateness),
            fraud: Fraud::default(),
            waiting: Waiting::default(),
            processed: ProcessedCounts::default(),
        }
    }

    /// An event in event-time order (or a late one within the allowed lateness).
    pub(crate) fn on_event(&mut self, config: &OperatorConfig, event: &Event, out: &mut Emitter) {
        let t = event.time.timestamp_millis();
        self.update_directory(event, out);
        match &event.payload {
            Payload::CodeGenerated(_) => self.release_waiting(event, out),
            Payload::UserRegistered(p) => {
                if let Some(code) = p.referral_code.as_deref() {
                    self.needs_code(config, code, event, false, out);
                }
            }
            Payload::LinkClicked(p) => {
                self.processed.add(OperatorKind::Fraud);
                let flagged = self
                    .fraud
                    .click(&config.fraud, &p.referral_id, &p.source_ip, t, out);
                self.needs_code(config, &p.referral_id, event, flagged, out);
            }
            Payload::ConversionStarted(p) => self.needs_code(config, &p.referral_id, event, false, out),
            _ => self.on_other_event(event, out),
        }
    }

    /// After a code's event (in order, late or too late): the events that waited for it and come after it.
    pub(crate) fn release_waiting(&mut self, event: &Event, out: &mut Emitter) {
        let Payload::CodeGenerated(p) = &event.payload else {
            return;
        };
        for parked in self.waiting.take(&p.code_id, order_stamp(event)) {
            self.with_code(&parked.event, parked.flagged, out);
        }
    }

    /// What `event` does with the owner of `code`, at once when the code is known; otherwise once the code comes,
    /// if it comes first in event order (see [`super::super::waiting`]).
    fn needs_code(
        &mut self,
        config: &OperatorConfig,
        code: &str,
        event: &Event,
        flagged: bool,
        out: &mut Emitter,
    ) {
        if self
            .directory
            .referrer_of_code_at(code, order_stamp(event))
            .is_some()
        {
            self.with_code(event, flagged, out);
        } else if self.directory.referrer_of_code(code).is_none() {
            self.waiting.park(code, event, flagged, config.max_waiting_events);
        }
        // Else the code was created after the event in event order: in that order the event named no code.
    }

    /// The parts of a registration through a code, a click or a conversion start that need the code's owner (known
    /// when called). `flagged`: the click's fraud verdict.
    fn with_code(&mut self, event: &Event, flagged: bool, out: &mut Emitter) {
        let t = event.time.timestamp_millis();
        let dir = &mut self.directory;
        match &event.payload {
            Payload::UserRegistered(p) => {
                let Some(code) = p.referral_code.as_deref() else {
                    return;
                };
                let Some(info) = dir.referrer_of_code(code).cloned() else {
                    return;
                };
                // A registration that waited for its code: attribution now (unless an event later in event order
                // named the referrer already); one that did not, update_directory attributed.
                if info.owner.as_str() != p.user_id
                    && dir.set_referrer(&p.user_id, info.owner.as_str(), order_stamp(event))
                {
                    self.processed.add(OperatorKind::Attribution);
                }
                self.processed.add(OperatorKind::Notifications);
                if info.owner.as_str() == p.user_id {
                    self.processed.add(OperatorKind::Fraud);
                    self.fraud.self_referral(event, code, &p.user_id, out);
                } else {
                    notifications::friend_joined(event, p, info.owner.as_str(), dir, out);
                }
            }
            Payload::LinkClicked(p) => {
                if let Some(info) = dir.referrer_of_code(&p.referral_id) {
                    self.processed.add(OperatorKind::Counters);
                    self.counters
                        .apply(info.owner.as_str(), t, CounterEvent::Click { flagged });
                }
            }
            Payload::ConversionStarted(p) => {
                if let Some(info) = dir.referrer_of_code(&p.referral_id) {
                    self.processed.add(OperatorKind::Counters);
                    self.counters
                        .apply(info.owner.as_str(), t, CounterEvent::ConversionStarted);
                    notifications::conversion_started(event, p, info.owner.as_str(), out);
                }
            }
            _ => {}
        }
    }

    /// Every event that names no referral code.
    fn on_other_event(&mut self, event: &Event, out: &mut Emitter) {
        let t = event.time.timestamp_millis();
        let dir = &self.directory;
        match &event.payload {
            Payload::ProfileUpdated(p) => {
                self.processed.add(OperatorKind::Notifications);
                notifications::connections(event, p, dir, out);
            }
            Payload::ConversionCompleted(p) => {
                if p.new_user_id == p.referrer_id {
                    self.processed.add(OperatorKind::Fraud);
                    self.fraud
                        .self_referral(event, &p.referral_id, &p.new_user_id, out);
                }
                let program = p
                    .program_id
                    .as_deref()
                    .or_else(|| {
                        dir.referrer_of_code_at(&p.referral_id, order_stamp(event))
                            .map(|c| c.program.as_str())
                    })
                    .unwrap_or(UNKNOWN_PROGRAM);
                self.processed.add(OperatorKind::Counters);
                self.counters
                    .apply(&p.referrer_id, t, CounterEvent::ConversionCompleted);
                self.processed.add(OperatorKind::Rewards);
                self.rewards.completed(&p.referrer_id, program);
                self.processed.add(OperatorKind::Leaderboard);
                self.leaderboards
                    .add(&p.referrer_id, t, dir.is_public(&p.referrer_id));
                self.processed.add(OperatorKind::Notifications);
                notifications::conversion_completed(event, p, dir, out);
            }
            Payload::RewardEarned(p) => {
                self.processed.add(OperatorKind::Counters);
                self.counters
                    .apply(&p.user_id, t, CounterEvent::Reward { amount: p.amount });
            }
            Payload::BidAwarded(p) => {
                self.processed.add(OperatorKind::Notifications);
                notifications::collaboration(event, p, dir, out);
            }
            // The social side's events; suggestions and testimonial requests went out on arrival; messages and
            // externally computed leaderboards feed no live feature.
            Payload::ShareCreated(_)
            | Payload::ShareEngaged(_)
            | Payload::TestimonialPublished(_)
            | Payload::TestimonialEngaged(_)
            | Payload::ProjectCreated(_)
            | Payload::ProjectCompleted(_)
            | Payload::MessageSentSocial(_)
            | Payload::LeaderboardUpdated(_)
            // Taken by `on_event`.
            | Payload::CodeGenerated(_)
            | Payload::UserRegistered(_)
            | Payload::LinkClicked(_)
            | Payload::ConversionStarted(_) => {}
        }
    }

    /// Attribution and privacy.
    pub(crate) fn update_directory(&mut self, event: &Event, out: &mut Emitter) {
        let dir = &mut self.directory;
        match &event.payload {
            Payload::CodeGenerated(p) => {
                self.processed.add(OperatorKind::Attribution);
                let info = CodeInfo {
                    owner: Key::new(&p.user_id),
                    program: Key::new(&p.program_id),
                    created: order_stamp(event),
                };
                dir.insert_code(&p.code_id, info);
            }
            Payload::UserRegistered(p) => {
                let at = order_stamp(event);
                let referrer = p
                    .referral_code
                    .as_deref()
                    .and_then(|c| dir.referrer_of_code_at(c, at))
                    .map(|c| c.owner.clone());
                if let Some(referrer) = referrer.filter(|r| r.as_str() != p.user_id)
                    && dir.set_referrer(&p.user_id, referrer.as_str(), at)
                {
                    self.processed.add(OperatorKind::Attribution);
                }
            }
            Payload::ConversionCompleted(p) if p.new_user_id != p.referrer_id => {
                self.processed.add(OperatorKind::Attribution);
                dir.set_referrer(&p.new_user_id, &p.referrer_id, order_stamp(event));
            }
            Payload::ProfileUpdated(p) => {
                let Some(privacy) = &p.privacy else { return };
                self.processed.add(OperatorKind::Privacy);
                if dir.update_privacy(&p.user_id, privacy, super::privacy_stamp(event)) {
                    let visible = dir.is_public(&p.user_id);
                    // Snapshots are refreshed at once only when they show the user: a hidden user must vanish
                    // from them before anything else is served, and the others change at the next tick anyway.
                    if self.leaderboards.set_visible(&p.user_id, visible) {
                        self.leaderboards.refresh_snapshots(out);
                    }
                }
            }
            _ => {}
        }
    }

    pub(crate) fn tick(&mut self, config: &OperatorConfig, tick: EventTimeMs, out: &mut Emitter) {
        self.counters.fire(tick, FireMode::Tick, out);
        self.rewards.fire(tick, &config.programs, out);
        self.leaderboards.fire(tick, FireMode::Tick, out);
        self.fraud.purge(&config.fraud, config.allowed_lateness_ms, tick);
        self.waiting
            .expire(tick.saturating_sub(config.allowed_lateness_ms));
    }

    pub(crate) fn flush_corrections(&mut self, watermark: EventTimeMs, out: &mut Emitter) {
        self.counters.fire(watermark, FireMode::CorrectionsOnly, out);
        self.leaderboards.fire(watermark, FireMode::CorrectionsOnly, out);
    }
}
