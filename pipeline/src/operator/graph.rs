//! The operator graph: every event goes through the operators in one fixed order, so the output is a function
//! of the (event-time ordered) input alone.

use serde::{Deserialize, Serialize};
use social_schemas::{Event, Payload};

use super::config::OperatorConfig;
use super::counters::{CounterEvent, Counters};
use super::directory::{CodeInfo, Directory, ShareInfo};
use super::engagement::Engagement;
use super::fraud::Fraud;
use super::leaderboard::Leaderboards;
use super::metrics::{OperatorKind, ProcessedCounts};
use super::notifications;
use super::output::Emitter;
use super::rewards::RewardProgress;
use super::testimonials::Testimonials;
use super::trending::Trending;
use crate::window::EventTimeMs;
use crate::window::key::Key;
use crate::window::table::FireMode;

/// Trending weight of a share; engagements weigh 1.
const SHARE_WEIGHT: f64 = 3.0;
/// Program of conversions whose code and payload name none.
pub const UNKNOWN_PROGRAM: &str = "unknown";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorGraph {
    /// Window shapes are fixed when the state is created; a restore keeps those of the checkpoint.
    #[serde(skip)]
    config: OperatorConfig,
    pub(crate) directory: Directory,
    pub(crate) counters: Counters,
    pub(crate) rewards: RewardProgress,
    pub(crate) leaderboards: Leaderboards,
    pub(crate) engagement: Engagement,
    pub(crate) trending: Trending,
    pub(crate) testimonials: Testimonials,
    pub(crate) fraud: Fraud,
    #[serde(skip)]
    processed: ProcessedCounts,
}

impl OperatorGraph {
    pub fn new(config: OperatorConfig) -> Self {
        let lateness = config.allowed_lateness_ms;
        OperatorGraph {
            directory: Directory::default(),
            counters: Counters::new(lateness),
            rewards: RewardProgress::default(),
            leaderboards: Leaderboards::new(config.leaderboard_top_n, lateness),
            engagement: Engagement::new(
                config.engagement_window,
                lateness,
                config.engagement_early_updates,
            ),
            trending: Trending::default(),
            testimonials: Testimonials::default(),
            fraud: Fraud::default(),
            processed: ProcessedCounts::default(),
            config,
        }
    }

    /// Re-attaches the configuration after a restore and rebuilds derived indexes.
    pub(crate) fn restored(mut self, config: OperatorConfig) -> Self {
        self.config = config;
        self.leaderboards.rebuild(&self.directory);
        self
    }

    pub fn config(&self) -> &OperatorConfig {
        &self.config
    }

    /// Announces program configurations that changed since the state was created.
    pub fn announce_programs(&mut self, time: EventTimeMs, out: &mut Emitter) {
        self.rewards.announce(&self.config.programs, time, out);
    }

    /// Called when an event is read, before it is ordered: notifications that need only the event.
    pub fn on_arrival(&mut self, event: &Event, out: &mut Emitter) {
        self.processed.add(OperatorKind::Notifications);
        notifications::on_arrival(event, out);
    }

    /// A too-late event: reference state only (attribution, privacy), no aggregate.
    pub fn on_too_late(&mut self, event: &Event, out: &mut Emitter) {
        self.update_directory(event, out);
    }

    /// An event in event-time order (or a late one within the allowed lateness).
    pub fn on_event(&mut self, event: &Event, out: &mut Emitter) {
        let t = event.time.timestamp_millis();
        self.update_directory(event, out);
        let dir = &self.directory;
        match &event.payload {
            Payload::UserRegistered(p) => {
                let Some(code) = p.referral_code.as_deref() else {
                    return;
                };
                let Some(info) = dir.referrer_of_code(code) else {
                    return;
                };
                self.processed.add(OperatorKind::Notifications);
                if info.owner.as_str() == p.user_id {
                    self.processed.add(OperatorKind::Fraud);
                    self.fraud.self_referral(event, code, &p.user_id, out);
                } else {
                    notifications::friend_joined(event, p, info.owner.as_str(), dir, out);
                }
            }
            Payload::ProfileUpdated(p) => {
                self.processed.add(OperatorKind::Notifications);
                notifications::connections(event, p, dir, out);
            }
            Payload::LinkClicked(p) => {
                self.processed.add(OperatorKind::Fraud);
                let flagged = self
                    .fraud
                    .click(&self.config.fraud, &p.referral_id, &p.source_ip, t, out);
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
            Payload::ConversionCompleted(p) => {
                if p.new_user_id == p.referrer_id {
                    self.processed.add(OperatorKind::Fraud);
                    self.fraud
                        .self_referral(event, &p.referral_id, &p.new_user_id, out);
                }
                let program = p
                    .program_id
                    .as_deref()
                    .or_else(|| dir.referrer_of_code(&p.referral_id).map(|c| c.program.as_str()))
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
            Payload::ShareCreated(p) => {
                if dir.is_public(&p.user_id) {
                    self.processed.add(OperatorKind::Trending);
                    self.trending.add(
                        &self.config.trending,
                        &p.content_id,
                        p.content_type,
                        t,
                        SHARE_WEIGHT,
                    );
                }
            }
            Payload::ShareEngaged(p) => {
                let share = dir.shares.get(p.share_id.as_bytes());
                let content = share.map(|s| s.content_id.as_str()).or(p.content_id.as_deref());
                let sharer = share.map(|s| s.sharer.as_str());
                self.processed.add(OperatorKind::Engagement);
                self.engagement
                    .add(t, &p.share_id, content, sharer, p.engagement_type);
                if let Some(share) = share.filter(|s| dir.is_public(s.sharer.as_str())) {
                    self.processed.add(OperatorKind::Trending);
                    self.trending.add(
                        &self.config.trending,
                        share.content_id.as_str(),
                        share.content_type,
                        t,
                        1.0,
                    );
                }
            }
            Payload::BidAwarded(p) => {
                self.processed.add(OperatorKind::Notifications);
                notifications::collaboration(event, p, dir, out);
            }
            Payload::TestimonialPublished(p) => {
                self.processed.add(OperatorKind::Testimonials);
                self.testimonials
                    .published(event, p, dir, self.config.testimonials_recent, out);
            }
            Payload::TestimonialEngaged(p) => {
                self.processed.add(OperatorKind::Testimonials);
                self.testimonials.engaged(&p.testimonial_id, p.engagement_type);
            }
            // Suggestions and testimonial requests went out on arrival; messages and externally computed
            // leaderboards feed no live feature.
            Payload::ProjectCreated(_)
            | Payload::ProjectCompleted(_)
            | Payload::MessageSentSocial(_)
            | Payload::LeaderboardUpdated(_)
            | Payload::CodeGenerated(_) => {}
        }
    }

    /// Attribution and privacy: the state every other operator reads.
    fn update_directory(&mut self, event: &Event, out: &mut Emitter) {
        let dir = &mut self.directory;
        match &event.payload {
            Payload::CodeGenerated(p) => {
                self.processed.add(OperatorKind::Attribution);
                let info = CodeInfo {
                    owner: Key::new(&p.user_id),
                    program: Key::new(&p.program_id),
                };
                dir.codes.insert(Key::new(&p.code_id), info);
            }
            Payload::UserRegistered(p) => {
                let referrer = p
                    .referral_code
                    .as_deref()
                    .and_then(|c| dir.referrer_of_code(c))
                    .map(|c| c.owner.clone());
                if let Some(referrer) = referrer.filter(|r| r.as_str() != p.user_id) {
                    self.processed.add(OperatorKind::Attribution);
                    dir.referred_by.insert(Key::new(&p.user_id), referrer);
                }
            }
            Payload::ConversionCompleted(p) if p.new_user_id != p.referrer_id => {
                self.processed.add(OperatorKind::Attribution);
                dir.referred_by
                    .insert(Key::new(&p.new_user_id), Key::new(&p.referrer_id));
            }
            Payload::ShareCreated(p) => {
                let info = ShareInfo {
                    sharer: Key::new(&p.user_id),
                    content_id: Key::new(&p.content_id),
                    content_type: p.content_type,
                };
                dir.shares.insert(Key::new(&p.share_id), info);
            }
            Payload::TestimonialPublished(p) => {
                dir.testimonial_authors
                    .insert(Key::new(&p.testimonial_id), Key::new(&p.author_id));
            }
            Payload::ProfileUpdated(p) => {
                let Some(privacy) = &p.privacy else { return };
                self.processed.add(OperatorKind::Privacy);
                if dir.update_privacy(&p.user_id, privacy) {
                    let visible = dir.is_public(&p.user_id);
                    // Snapshots are refreshed at once only when they show the user: a hidden user must vanish
                    // from them before anything else is served, and the others change at the next tick anyway.
                    if self.leaderboards.set_visible(&p.user_id, visible) {
                        self.leaderboards.refresh_snapshots(out);
                    }
                    if self.testimonials.mentions(&p.user_id) {
                        self.testimonials.refresh_snapshot(&self.directory, out);
                    }
                }
            }
            _ => {}
        }
    }

    /// A watermark tick: coalesced updates, early and final window results, rank changes, grouped alerts.
    pub fn on_tick(&mut self, tick: EventTimeMs, out: &mut Emitter) {
        self.tick_all(tick, false, out);
    }

    /// A tick while input is quiet: like [`OperatorGraph::on_tick`], and trending re-ranks every window that
    /// changed since its last ranking even within the same window step, so that nothing counted stays unpublished.
    pub fn on_idle_tick(&mut self, tick: EventTimeMs, out: &mut Emitter) {
        self.tick_all(tick, true, out);
    }

    fn tick_all(&mut self, tick: EventTimeMs, idle: bool, out: &mut Emitter) {
        self.counters.fire(tick, FireMode::Tick, out);
        self.rewards.fire(tick, &self.config.programs, out);
        self.leaderboards.fire(tick, FireMode::Tick, out);
        self.engagement.fire(tick, FireMode::Tick, out);
        self.trending
            .fire(&self.config.trending, self.config.trending_top_k, tick, idle, out);
        self.testimonials.fire(tick, &self.directory, out);
        self.fraud
            .purge(&self.config.fraud, self.config.allowed_lateness_ms, tick);
        self.processed.publish();
    }

    /// Right after a late event: corrections of windows already final.
    pub fn flush_corrections(&mut self, watermark: EventTimeMs, out: &mut Emitter) {
        self.counters.fire(watermark, FireMode::CorrectionsOnly, out);
        self.leaderboards.fire(watermark, FireMode::CorrectionsOnly, out);
        self.engagement.fire(watermark, FireMode::CorrectionsOnly, out);
    }

    /// Entries held per operator, for the state-size gauge.
    pub fn state_sizes(&self) -> [(OperatorKind, usize); 8] {
        [
            (OperatorKind::Attribution, self.directory.len()),
            (OperatorKind::Counters, self.counters.len()),
            (OperatorKind::Rewards, self.rewards.len()),
            (OperatorKind::Leaderboard, self.leaderboards.len()),
            (OperatorKind::Engagement, self.engagement.len()),
            (OperatorKind::Trending, self.trending.len()),
            (OperatorKind::Testimonials, self.testimonials.len()),
            (OperatorKind::Fraud, self.fraud.len()),
        ]
    }

    pub fn leaderboards(&self) -> &Leaderboards {
        &self.leaderboards
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }
}
