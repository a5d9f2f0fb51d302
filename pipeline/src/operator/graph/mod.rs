//! The operator graph: every event goes through the operators in one fixed order, so the output is a function
//! of the (event-time ordered) input alone.
//!
//! The operators form two sides that share no state: the [`referral`] side (attribution, counters, reward
//! progress, leaderboards, fraud, referral notifications) and the [`social`] side (engagement, trending,
//! testimonials). Each keeps the part of the directory it reads, privacy settings on both. For every step (an
//! event, a tick) the output is the referral side's messages, then the social side's. That is the order one
//! thread running both gives, so [`OperatorGraph::run_steps`] may run the two sides of a batch of steps on two
//! threads and merge their messages step by step: the output is the same, byte for byte, either way.
//!
//! Checkpoints hold one directory, as before the split: the union of both sides' parts.

mod referral;
mod social;
mod worker;

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use social_schemas::Event;

use super::config::OperatorConfig;
use super::counters::Counters;
use super::directory::Directory;
use super::engagement::Engagement;
use super::fraud::Fraud;
use super::leaderboard::Leaderboards;
use super::metrics::OperatorKind;
use super::notifications;
use super::output::Emitter;
use super::rewards::RewardProgress;
use super::testimonials::Testimonials;
use super::trending::Trending;
use super::waiting::Waiting;
use crate::window::EventTimeMs;
use referral::ReferralSide;
use social::SocialSide;
use worker::{Job, SocialWorker, WorkerSlot};

/// Program of conversions whose code and payload name none.
pub const UNKNOWN_PROGRAM: &str = "unknown";

/// Batches of fewer steps run on the calling thread alone: handing them to the second thread and back would cost
/// more than it saves (a step takes about 3 us, a hand-over some tens).
const PARALLEL_MIN_STEPS: usize = 256;

/// One step of the event-time ordered input.
#[derive(Debug)]
pub enum Step {
    Event(Box<Event>),
    /// A watermark tick: coalesced updates, early and final window results, rank changes, grouped alerts.
    Tick(EventTimeMs),
    /// A tick while input is quiet: trending also re-ranks every window that changed since its last ranking
    /// within the same window step, so that nothing counted stays unpublished.
    IdleTick(EventTimeMs),
}

#[derive(Debug, Clone)]
pub struct OperatorGraph {
    /// Window shapes are fixed when the state is created; a restore keeps those of the checkpoint.
    config: Arc<OperatorConfig>,
    referral: ReferralSide,
    /// Boxed: it moves to the second thread and back for each parallel run.
    social: Box<SocialSide>,
    /// The second thread, started by the first parallel run.
    worker: WorkerSlot,
    /// Emitters kept between parallel runs for their capacity.
    scratch: Scratch,
}

#[derive(Debug, Default)]
struct Scratch {
    ours: Emitter,
    theirs: Emitter,
}

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl OperatorGraph {
    pub fn new(config: OperatorConfig) -> Self {
        OperatorGraph {
            referral: ReferralSide::new(&config),
            social: Box::new(SocialSide::new(&config)),
            config: Arc::new(config),
            worker: WorkerSlot::default(),
            scratch: Scratch::default(),
        }
    }

    /// Re-attaches the configuration after a restore and rebuilds derived indexes.
    pub(crate) fn restored(mut self, config: OperatorConfig) -> Self {
        self.config = Arc::new(config);
        self.referral.leaderboards.rebuild(&self.referral.directory);
        self
    }

    pub fn config(&self) -> &OperatorConfig {
        &self.config
    }

    /// Announces program configurations that changed since the state was created.
    pub fn announce_programs(&mut self, time: EventTimeMs, out: &mut Emitter) {
        self.referral.rewards.announce(&self.config.programs, time, out);
    }

    /// Called when an event is read, before it is ordered: notifications that need only the event.
    pub fn on_arrival(&mut self, event: &Event, out: &mut Emitter) {
        self.referral.processed.add(OperatorKind::Notifications);
        notifications::on_arrival(event, out);
    }

    /// A too-late event: reference state only (attribution, privacy), no aggregate of its own; the events that
    /// waited for its code or share (they may still be within the allowed lateness) count, with their corrections.
    pub fn on_too_late(&mut self, event: &Event, watermark: EventTimeMs, out: &mut Emitter) {
        self.referral.update_directory(event, out);
        self.social.update_directory(event, out);
        self.referral.release_waiting(event, out);
        self.social.release_waiting(&self.config, event);
        self.referral.flush_corrections(watermark, out);
        self.social.flush_corrections(watermark, out);
    }

    /// A late event within the allowed lateness (both sides), then the corrections of windows already final (both
    /// sides): the event's own messages come before any correction.
    pub fn on_late_event(&mut self, event: &Event, watermark: EventTimeMs, out: &mut Emitter) {
        self.referral.on_event(&self.config, event, out);
        self.social.on_event(&self.config, event, out);
        self.referral.flush_corrections(watermark, out);
        self.social.flush_corrections(watermark, out);
    }

    /// Adds the events each operator processed to its metric, from the caller's thread (a thread-local recorder
    /// sees them).
    fn publish_processed(&mut self) {
        self.referral.processed.publish();
        self.social.processed.publish();
    }

    /// Runs `steps` in order, each through the referral side then the social side. With `config.threads` 2 and a
    /// batch large enough, the social side runs on the graph's second thread meanwhile and the messages are merged
    /// step by step: the same output.
    pub fn run_steps(&mut self, steps: Vec<Step>, out: &mut Emitter) {
        if self.config.threads < 2 || steps.len() < PARALLEL_MIN_STEPS {
            for step in &steps {
                run_referral(&mut self.referral, &self.config, step, out);
                run_social(&mut self.social, &self.config, step, out);
            }
        } else {
            self.run_on_two_threads(steps, out);
        }
        self.publish_processed();
    }

    /// The social side of `steps` on the second thread, the referral side here, then the merge. A panic in an
    /// operator on either thread goes on here with the social side's state lost (the graph is not used after
    /// one: the topology's task ends with it).
    fn run_on_two_threads(&mut self, steps: Vec<Step>, out: &mut Emitter) {
        // The social side runs only the steps that concern it: fewer events to fetch into the other core's cache.
        let mine: Vec<u32> = (0..)
            .zip(&steps)
            .filter(|(_, step)| match step {
                Step::Event(event) => SocialSide::concerns(event),
                Step::Tick(_) | Step::IdleTick(_) => true,
            })
            .map(|(i, _)| i)
            .collect();
        let steps = Arc::new(steps);
        // An empty side stands in while the state is on the other thread; it is put back below.
        let side = std::mem::replace(&mut self.social, Box::new(SocialSide::new(&self.config)));
        let slot = ForgetWorkerOnUnwind(&mut self.worker);
        let worker = slot.0.0.get_or_insert_with(SocialWorker::start);
        let job = Job {
            side,
            config: Arc::clone(&self.config),
            steps: Arc::clone(&steps),
            mine,
            out: std::mem::take(&mut self.scratch.theirs),
        };
        let mut ours = std::mem::take(&mut self.scratch.ours);
        let mut our_ends = Vec::with_capacity(steps.len());
        let submitted = worker.submit(job);
        for step in steps.iter() {
            run_referral(&mut self.referral, &self.config, step, &mut ours);
            our_ends.push((ours.outputs.len(), ours.snapshots.len()));
        }
        let mut done = match submitted {
            Ok(()) => match worker.finish() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            // No second thread: the social side runs here.
            Err(job) => job.run(),
        };
        self.social = done.side;
        merge(&mut ours, &our_ends, &mut done.out, &done.mine, &done.ends, out);
        self.scratch = Scratch {
            ours,
            theirs: done.out,
        };
    }

    /// Entries held per operator, for the state-size gauge.
    pub fn state_sizes(&self) -> [(OperatorKind, usize); 8] {
        let directory =
            self.referral.directory.len() + self.social.directory.len() - self.social.directory.privacy_len();
        [
            // Events waiting for their code or share count with the directory they wait on.
            (
                OperatorKind::Attribution,
                directory + self.referral.waiting.len() + self.social.waiting.len(),
            ),
            (OperatorKind::Counters, self.referral.counters.len()),
            (OperatorKind::Rewards, self.referral.rewards.len()),
            (OperatorKind::Leaderboard, self.referral.leaderboards.len()),
            (OperatorKind::Engagement, self.social.engagement.len()),
            (OperatorKind::Trending, self.social.trending.len()),
            (OperatorKind::Testimonials, self.social.testimonials.len()),
            (OperatorKind::Fraud, self.referral.fraud.len()),
        ]
    }

    pub fn leaderboards(&self) -> &Leaderboards {
        &self.referral.leaderboards
    }

    pub fn counters(&self) -> &Counters {
        &self.referral.counters
    }

    /// The referral side's directory: codes, who referred whom, privacy.
    pub fn directory(&self) -> &Directory {
        &self.referral.directory
    }
}

fn run_referral(side: &mut ReferralSide, config: &OperatorConfig, step: &Step, out: &mut Emitter) {
    match step {
        Step::Event(event) => side.on_event(config, event, out),
        Step::Tick(t) | Step::IdleTick(t) => side.tick(config, *t, out),
    }
}

fn run_social(side: &mut SocialSide, config: &OperatorConfig, step: &Step, out: &mut Emitter) {
    match step {
        Step::Event(event) => side.on_event(config, event, out),
        Step::Tick(t) => side.tick(config, *t, false, out),
        Step::IdleTick(t) => side.tick(config, *t, true, out),
    }
}

/// Appends to `out`, step by step, the referral side's messages then the social side's, leaving both sides'
/// emitters empty (their capacity is reused). `our_ends` holds, per step, how many outputs and snapshot updates the
/// referral side had emitted once the step was done; `their_ends` the same for the social side, per step it ran
/// (`their_steps`, ascending).
fn merge(
    ours: &mut Emitter,
    our_ends: &[(usize, usize)],
    theirs: &mut Emitter,
    their_steps: &[u32],
    their_ends: &[(usize, usize)],
    out: &mut Emitter,
) {
    out.outputs.reserve(ours.outputs.len() + theirs.outputs.len());
    out.snapshots
        .reserve(ours.snapshots.len() + theirs.snapshots.len());
    let (mut our_outputs, mut our_snapshots) = (ours.outputs.drain(..), ours.snapshots.drain(..));
    let (mut their_outputs, mut their_snapshots) = (theirs.outputs.drain(..), theirs.snapshots.drain(..));
    let mut theirs_by_step = their_steps.iter().zip(their_ends).peekable();
    let (mut ours_done, mut theirs_done) = ((0, 0), (0, 0));
    for (step, our_end) in (0..).zip(our_ends) {
        out.outputs
            .extend(our_outputs.by_ref().take(our_end.0 - ours_done.0));
        out.snapshots
            .extend(our_snapshots.by_ref().take(our_end.1 - ours_done.1));
        ours_done = *our_end;
        if let Some((_, their_end)) = theirs_by_step.next_if(|(s, _)| **s == step) {
            out.outputs
                .extend(their_outputs.by_ref().take(their_end.0 - theirs_done.0));
            out.snapshots
                .extend(their_snapshots.by_ref().take(their_end.1 - theirs_done.1));
            theirs_done = *their_end;
        }
    }
}

/// Drops the graph's worker when a panic unwinds through a parallel run: the worker may still hold that run's
/// answer, which the next run would otherwise take for its own.
struct ForgetWorkerOnUnwind<'a>(&'a mut WorkerSlot);

impl Drop for ForgetWorkerOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.0 = None;
        }
    }
}

/// The checkpointed form: the operators' state with one directory (both sides' parts), as it was before the
/// graph had sides.
#[derive(Serialize)]
struct GraphRef<'a> {
    directory: super::directory::DirectoryUnion<'a>,
    counters: &'a Counters,
    rewards: &'a RewardProgress,
    leaderboards: &'a Leaderboards,
    engagement: &'a Engagement,
    trending: &'a Trending,
    testimonials: &'a Testimonials,
    fraud: &'a Fraud,
    #[serde(skip_serializing_if = "nothing_waits")]
    waiting_for_codes: &'a Waiting,
    #[serde(skip_serializing_if = "nothing_waits")]
    waiting_for_shares: &'a Waiting,
}

fn nothing_waits(waiting: &&Waiting) -> bool {
    waiting.is_empty()
}

#[derive(Deserialize)]
struct GraphState {
    directory: Directory,
    counters: Counters,
    rewards: RewardProgress,
    leaderboards: Leaderboards,
    engagement: Engagement,
    trending: Trending,
    testimonials: Testimonials,
    fraud: Fraud,
    /// Absent in checkpoints written with nothing waiting (and before events waited).
    #[serde(default)]
    waiting_for_codes: Waiting,
    #[serde(default)]
    waiting_for_shares: Waiting,
}

impl Serialize for OperatorGraph {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        GraphRef {
            directory: self.referral.directory.union(&self.social.directory),
            counters: &self.referral.counters,
            rewards: &self.referral.rewards,
            leaderboards: &self.referral.leaderboards,
            engagement: &self.social.engagement,
            trending: &self.social.trending,
            testimonials: &self.social.testimonials,
            fraud: &self.referral.fraud,
            waiting_for_codes: &self.referral.waiting,
            waiting_for_shares: &self.social.waiting,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for OperatorGraph {
    /// The configuration is attached by [`OperatorGraph::restored`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let state = GraphState::deserialize(deserializer)?;
        let (referral_directory, social_directory) = state.directory.split();
        Ok(OperatorGraph {
            config: Arc::new(OperatorConfig::default()),
            worker: WorkerSlot::default(),
            scratch: Scratch::default(),
            referral: ReferralSide {
                directory: referral_directory,
                counters: state.counters,
                rewards: state.rewards,
                leaderboards: state.leaderboards,
                fraud: state.fraud,
                waiting: state.waiting_for_codes,
                processed: Default::default(),
            },
            social: Box::new(SocialSide {
                directory: social_directory,
                engagement: state.engagement,
                trending: state.trending,
                testimonials: state.testimonials,
                waiting: state.waiting_for_shares,
                processed: Default::default(),
            }),
        })
    }
}

/// The order stamp of a privacy update: where `event` stands in event order (see [`Directory::update_privacy`]).
fn privacy_stamp(event: &Event) -> super::directory::PrivacyStamp {
    (
        event.time.timestamp_millis(),
        crate::window::reorder::tie_hash(&event.source, &event.id),
    )
}
