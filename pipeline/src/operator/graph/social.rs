//! The social side of the graph: engagement aggregates and alerts, trending content and testimonials. It keeps
//! its own [`Directory`] (who shared what, who wrote which testimonial, privacy); codes and referrals live on the
//! referral side.

use social_schemas::{Event, Payload};

use super::super::config::OperatorConfig;
use super::super::directory::{Directory, ShareInfo};
use super::super::engagement::Engagement;
use super::super::metrics::{OperatorKind, ProcessedCounts};
use super::super::output::Emitter;
use super::super::testimonials::Testimonials;
use super::super::trending::Trending;
use super::super::waiting::{Waiting, order_stamp};
use crate::window::EventTimeMs;
use crate::window::key::Key;
use crate::window::table::FireMode;

/// Trending weight of a share; engagements weigh 1.
const SHARE_WEIGHT: f64 = 3.0;

#[derive(Debug, Clone)]
pub(crate) struct SocialSide {
    pub(crate) directory: Directory,
    pub(crate) engagement: Engagement,
    pub(crate) trending: Trending,
    pub(crate) testimonials: Testimonials,
    /// Engagements read before their share (late).
    pub(crate) waiting: Waiting,
    pub(crate) processed: ProcessedCounts,
}

impl SocialSide {
    pub(crate) fn new(config: &OperatorConfig) -> Self {
        SocialSide {
            directory: Directory::default(),
            engagement: Engagement::new(
                config.engagement_window,
                config.allowed_lateness_ms,
                config.engagement_early_updates,
            ),
            trending: Trending::default(),
            testimonials: Testimonials::default(),
            waiting: Waiting::default(),
            processed: ProcessedCounts::default(),
        }
    }

    /// Whether `event` can change this side's state or output (the others are not handed to it).
    pub(crate) fn concerns(event: &Event) -> bool {
        // Exhaustive: a new event type must be placed on a side.
        match event.payload {
            Payload::ShareCreated(_)
            | Payload::ShareEngaged(_)
            | Payload::TestimonialPublished(_)
            | Payload::TestimonialEngaged(_)
            | Payload::ProfileUpdated(_) => true,
            Payload::CodeGenerated(_)
            | Payload::LinkClicked(_)
            | Payload::ConversionStarted(_)
            | Payload::ConversionCompleted(_)
            | Payload::RewardEarned(_)
            | Payload::LeaderboardUpdated(_)
            | Payload::UserRegistered(_)
            | Payload::ProjectCreated(_)
            | Payload::ProjectCompleted(_)
            | Payload::BidAwarded(_)
            | Payload::MessageSentSocial(_) => false,
        }
    }

    /// An event in event-time order (or a late one within the allowed lateness).
    pub(crate) fn on_event(&mut self, config: &OperatorConfig, event: &Event, out: &mut Emitter) {
        let t = event.time.timestamp_millis();
        self.update_directory(event, out);
        let dir = &self.directory;
        match &event.payload {
            Payload::ShareCreated(p) => {
                if dir.is_public(&p.user_id) && !ShareInfo::is_restricted(p.metadata.as_ref()) {
                    self.processed.add(OperatorKind::Trending);
                    self.trending
                        .add(&config.trending, &p.content_id, p.content_type, t, SHARE_WEIGHT);
                }
                self.release_waiting(config, event);
            }
            Payload::ShareEngaged(p) => {
                self.processed.add(OperatorKind::Engagement);
                if dir.share_at(&p.share_id, order_stamp(event)).is_some() {
                    self.engagement.add_share(t, &p.share_id, None, p.engagement_type);
                    self.with_share(config, event, false);
                } else if dir.shares.contains_key(p.share_id.as_bytes()) {
                    // The share was created after the engagement in event order: in that order it named none.
                    self.engagement
                        .add_share(t, &p.share_id, p.content_id.as_deref(), p.engagement_type);
                } else {
                    // The share and the content the event names count now; the sharer and trending need the
                    // share, which may come later (read late).
                    self.engagement
                        .add_share(t, &p.share_id, p.content_id.as_deref(), p.engagement_type);
                    self.waiting
                        .park(&p.share_id, event, false, config.max_waiting_events);
                }
            }
            Payload::TestimonialPublished(p) => {
                self.processed.add(OperatorKind::Testimonials);
                self.testimonials
                    .published(event, p, dir, config.testimonials_recent, out);
            }
            Payload::TestimonialEngaged(p) => {
                self.processed.add(OperatorKind::Testimonials);
                self.testimonials
                    .engaged(&p.testimonial_id, p.engagement_type, t, dir);
            }
            _ => {}
        }
    }

    /// After a share's event (in order, late or too late): the engagements that waited for it and come after it.
    pub(crate) fn release_waiting(&mut self, config: &OperatorConfig, event: &Event) {
        let Payload::ShareCreated(p) = &event.payload else {
            return;
        };
        for parked in self.waiting.take(&p.share_id, order_stamp(event)) {
            let content_counted =
                matches!(&parked.event.payload, Payload::ShareEngaged(e) if e.content_id.is_some());
            self.with_share(config, &parked.event, content_counted);
        }
    }

    /// The parts of an engagement that need its share (known when called): the content it shared (unless
    /// `content_counted`: the engagement waited, and the content it names counted on arrival), the sharer's count
    /// and alert, trending.
    fn with_share(&mut self, config: &OperatorConfig, event: &Event, content_counted: bool) {
        let Payload::ShareEngaged(p) = &event.payload else {
            return;
        };
        let Some(share) = self.directory.shares.get(p.share_id.as_bytes()) else {
            return;
        };
        let t = event.time.timestamp_millis();
        let content = share.content_id.as_str();
        if !content_counted {
            self.engagement.add_content(t, content, p.engagement_type);
        }
        self.engagement.add_sharer(
            t,
            &p.share_id,
            Some(content),
            share.sharer.as_str(),
            p.engagement_type,
        );
        if !share.restricted && self.directory.is_public(share.sharer.as_str()) {
            self.processed.add(OperatorKind::Trending);
            self.trending
                .add(&config.trending, content, share.content_type, t, 1.0);
        }
    }

    /// Who shared what, who wrote which testimonial, and privacy (the referral side keeps the same privacy
    /// settings; only it counts them in the metrics).
    pub(crate) fn update_directory(&mut self, event: &Event, out: &mut Emitter) {
        let dir = &mut self.directory;
        match &event.payload {
            Payload::ShareCreated(p) => {
                let info = ShareInfo {
                    sharer: Key::new(&p.user_id),
                    content_id: Key::new(&p.content_id),
                    content_type: p.content_type,
                    restricted: ShareInfo::is_restricted(p.metadata.as_ref()),
                    created: order_stamp(event),
                };
                dir.insert_share(&p.share_id, info);
            }
            Payload::TestimonialPublished(p) => {
                dir.testimonial_authors
                    .insert(Key::new(&p.testimonial_id), Key::new(&p.author_id));
            }
            Payload::ProfileUpdated(p) => {
                let Some(privacy) = &p.privacy else { return };
                if dir.update_privacy(&p.user_id, privacy, super::privacy_stamp(event)) {
                    self.trending.visibility_changed(&p.user_id);
                    if self.testimonials.mentions(&p.user_id) {
                        self.testimonials.refresh_snapshot(&self.directory, out);
                    }
                }
            }
            _ => {}
        }
    }

    pub(crate) fn tick(&mut self, config: &OperatorConfig, tick: EventTimeMs, idle: bool, out: &mut Emitter) {
        self.engagement.fire(tick, FireMode::Tick, idle, out);
        self.trending.fire(
            &config.trending,
            config.trending_top_k,
            tick,
            idle,
            &self.directory,
            out,
        );
        self.testimonials.fire(tick, idle, &self.directory, out);
        let cutoff = tick.saturating_sub(config.allowed_lateness_ms);
        self.waiting.expire(cutoff);
        self.testimonials.expire_unpublished(cutoff, &self.directory);
    }

    pub(crate) fn flush_corrections(&mut self, watermark: EventTimeMs, out: &mut Emitter) {
        self.engagement
            .fire(watermark, FireMode::CorrectionsOnly, false, out);
    }
}
