//! One subscriber connection (a stream or a long poll): subscribe first, then replay from history, then go live,
//! dropping what was already sent and filling gaps from history, so a client sees each topic's messages exactly in
//! history order, none twice, none skipped silently.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::DeliveryError;
use crate::delivery::Shared;
use crate::history::{Entry, GapReason, Position, Replay};
use crate::hub::{Delivered, SubscriptionGuard};
use crate::message::{reset_json, snapshot_json};
use crate::metrics::{self, CloseReason, ReplayResult};
use crate::resume_token::{Held, ResumeToken, encode_positions, topic_tag};
use crate::topics::{Topic, TopicKind};

/// One message ready to write, with the resume token that follows it.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    pub json: Bytes,
    pub token: String,
    /// When the message was published, and its topic's kind: for the publish-to-write latency (not for `RESET`
    /// and `SNAPSHOT`, which this node writes itself).
    pub published: Option<(Instant, TopicKind)>,
}

/// What a connection asks for beyond live messages.
#[derive(Debug, Default)]
pub(crate) struct OpenOptions {
    pub resume: Option<ResumeToken>,
    pub history: usize,
    pub snapshot: bool,
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    topics: Vec<Topic>,
    tags: Vec<u32>,
    positions: Vec<Position>,
    rx: mpsc::Receiver<Delivered>,
    cut: CancellationToken,
    _subscription: SubscriptionGuard,
}

impl Session {
    /// Subscribes to `topics` (already access-checked), then produces the replay, resets, history and snapshots
    /// the options ask for.
    pub(crate) async fn open(
        shared: Arc<Shared>,
        topics: Vec<Topic>,
        options: OpenOptions,
    ) -> Result<(Session, Vec<Out>), DeliveryError> {
        let (tx, rx) = mpsc::channel(shared.config.connection_queue.max(1));
        // A child of the shutdown token: one future watches both the cut-off and shutdown.
        let cut = shared.shutdown.child_token();
        let subscription = shared.hub.subscribe(&topics, &tx, &cut);
        drop(tx);
        let tags = topics.iter().map(|topic| topic_tag(topic.name())).collect();
        let positions = vec![Position::default(); topics.len()];
        let mut session = Session {
            shared,
            topics,
            tags,
            positions,
            rx,
            cut,
            _subscription: subscription,
        };
        let mut replay = Vec::new();
        let mut resets = Vec::new();
        for index in 0..session.topics.len() {
            session
                .start_topic(index, &options, &mut replay, &mut resets)
                .await?;
        }
        let mut out = Vec::new();
        for (index, reason) in resets {
            session
                .reset(index, reason, session.positions[index], &mut out)
                .await?;
        }
        // Replay in publish order across topics, as the live stream would, each topic in its history order: a topic's
        // messages sort by the latest publish time of the topic so far, so that one stamped earlier than the message
        // before it (a wall clock set back before a restart, concurrent publishers) cannot overtake it.
        let mut latest: Vec<Option<Instant>> = vec![None; session.topics.len()];
        let mut replay: Vec<(Instant, usize, Arc<Entry>)> = replay
            .into_iter()
            .map(|(index, entry)| {
                let at = latest[index].map_or(entry.published_at, |at| at.max(entry.published_at));
                latest[index] = Some(at);
                (at, index, entry)
            })
            .collect();
        replay.sort_by_key(|(at, index, _)| (*at, *index));
        for (_, index, entry) in replay {
            if entry.position.offset > session.positions[index].offset {
                session.emit(index, &entry, &mut out);
            }
        }
        for index in 0..session.topics.len() {
            let name = session.topics[index].name();
            let fresh = options
                .resume
                .as_ref()
                .is_none_or(|token| token.held(name) == Held::Absent);
            if fresh && options.snapshot {
                session.push_snapshot(index, &mut out).await?;
            }
        }
        Ok((session, out))
    }

    /// Sets the start position of one topic and collects what it replays (or why it must be reset).
    async fn start_topic(
        &mut self,
        index: usize,
        options: &OpenOptions,
        replay: &mut Vec<(usize, Arc<Entry>)>,
        resets: &mut Vec<(usize, GapReason)>,
    ) -> Result<(), DeliveryError> {
        let history = self.shared.history.clone();
        let name = self.topics[index].name().to_owned();
        let head = history.head(&name).await?;
        let held = options
            .resume
            .as_ref()
            .map_or(Held::Absent, |token| token.held(&name));
        if held == Held::Ambiguous {
            metrics::replay(ReplayResult::Reset);
            self.positions[index] = head;
            resets.push((index, GapReason::PositionUnknown));
            return Ok(());
        }
        if let Held::At(position) = held {
            let max = self.shared.config.history_max_messages_per_topic.max(1);
            match history.read_after(&name, position, max).await? {
                Replay::Messages(entries) => {
                    metrics::replay(ReplayResult::Hit);
                    self.positions[index] = position;
                    replay.extend(entries.into_iter().map(|entry| (index, entry)));
                }
                Replay::Gap(reason) => {
                    metrics::replay(ReplayResult::Reset);
                    self.positions[index] = head;
                    resets.push((index, reason));
                }
            }
            return Ok(());
        }
        if options.resume.is_some() {
            metrics::replay(ReplayResult::Miss);
        }
        self.positions[index] = head;
        if options.history > 0 {
            let entries = history.last(&name, options.history).await?;
            let entries: Vec<Arc<Entry>> = entries
                .into_iter()
                .filter(|entry| entry.position.epoch == head.epoch)
                .collect();
            if let Some(first) = entries.first() {
                self.positions[index] = Position {
                    epoch: head.epoch,
                    offset: first.position.offset.saturating_sub(1),
                };
            }
            replay.extend(entries.into_iter().map(|entry| (index, entry)));
        }
        Ok(())
    }

    /// The resume token for the positions reached so far.
    pub(crate) fn token(&self) -> String {
        encode_positions(self.tags.iter().copied().zip(self.positions.iter().copied()))
    }

    /// Cancelled when the hub cut this connection off as too slow, or when the server shuts down.
    pub(crate) fn cut(&self) -> &CancellationToken {
        &self.cut
    }

    /// Why [`Session::cut`] fired.
    pub(crate) fn stop_reason(&self) -> CloseReason {
        if self.shared.shutdown.is_cancelled() {
            CloseReason::Shutdown
        } else {
            CloseReason::Slow
        }
    }

    /// The next live entry (cancel-safe). `None` when the hub dropped this connection.
    pub(crate) async fn recv(&mut self) -> Option<Delivered> {
        self.rx.recv().await
    }

    pub(crate) fn try_recv(&mut self) -> Option<Delivered> {
        self.rx.try_recv().ok()
    }

    /// Handles one live entry: drops a duplicate, fills a gap from history, resets on an epoch change.
    pub(crate) async fn accept(
        &mut self,
        delivered: Delivered,
        out: &mut Vec<Out>,
    ) -> Result<(), DeliveryError> {
        let (index, entry) = delivered;
        let index = usize::from(index);
        let Some(current) = self.positions.get(index).copied() else {
            return Ok(());
        };
        if entry.position.epoch != current.epoch {
            return self.epoch_changed(index, current, entry, out).await;
        }
        if entry.position.offset <= current.offset {
            return Ok(());
        }
        if entry.position.offset == current.offset + 1 {
            self.emit(index, &entry, out);
            return Ok(());
        }
        let name = self.topics[index].name().to_owned();
        let max = self.shared.config.history_max_messages_per_topic.max(1);
        match self.shared.history.read_after(&name, current, max).await? {
            Replay::Messages(entries) => self.emit_up_to(index, &entries, &entry, out),
            Replay::Gap(reason) => {
                metrics::replay(ReplayResult::Reset);
                let has_snapshot = self.shared.snapshots.snapshot(&name).await.is_some();
                if reason == GapReason::Expired && !has_snapshot {
                    // Nothing else brings the client up to date: reset to just before the live entry, which is
                    // then delivered.
                    let before = Position {
                        epoch: entry.position.epoch,
                        offset: entry.position.offset.saturating_sub(1),
                    };
                    self.reset(index, reason, before, out).await?;
                    self.emit(index, &entry, out);
                } else {
                    // The SNAPSHOT (the current state) covers the entry and everything before the head; an entry
                    // applied on top of it would count twice (leaderboard messages are changes). Another epoch:
                    // the head's.
                    let head = self.shared.history.head(&name).await?;
                    self.reset(index, reason, head, out).await?;
                }
            }
        }
        Ok(())
    }

    /// A live entry of another epoch than the connection's position. Epochs are not ordered, so the topic's head
    /// tells which is current: an entry of an epoch the topic no longer has (a late one from before a reset) is
    /// dropped. When the entry's epoch is the head's: on a topic with a snapshot the connection is reset to the
    /// head (the `SNAPSHOT` is the current state and holds the entry already); on one without, it is reset to the
    /// start of the new epoch and gets the new epoch's messages up to the entry from history, or, when history no
    /// longer holds them all, is reset to just before the entry, which is then delivered. Otherwise it is reset to
    /// the head, as a resume from an old epoch is.
    async fn epoch_changed(
        &mut self,
        index: usize,
        current: Position,
        entry: Arc<Entry>,
        out: &mut Vec<Out>,
    ) -> Result<(), DeliveryError> {
        let name = self.topics[index].name().to_owned();
        let head = self.shared.history.head(&name).await?;
        if head.epoch == current.epoch {
            return Ok(());
        }
        metrics::replay(ReplayResult::Reset);
        if head.epoch != entry.position.epoch || self.shared.snapshots.snapshot(&name).await.is_some() {
            return self.reset(index, GapReason::EpochChanged, head, out).await;
        }
        let start = Position {
            epoch: entry.position.epoch,
            offset: 0,
        };
        let max = self.shared.config.history_max_messages_per_topic.max(1);
        // History holding the new epoch from its first message brings the client up to date from there.
        if let Replay::Messages(entries) = self.shared.history.read_after(&name, start, max).await?
            && entries.first().is_some_and(|first| first.position.offset == 1)
        {
            self.reset(index, GapReason::EpochChanged, start, out).await?;
            self.emit_up_to(index, &entries, &entry, out);
            if self.positions[index].offset < entry.position.offset {
                self.emit(index, &entry, out);
            }
            return Ok(());
        }
        let before = Position {
            epoch: entry.position.epoch,
            offset: entry.position.offset.saturating_sub(1),
        };
        self.reset(index, GapReason::EpochChanged, before, out).await?;
        if entry.position.offset > before.offset {
            self.emit(index, &entry, out);
        }
        Ok(())
    }

    /// The `entries` read from history up to the live `entry` (later ones come live after it).
    fn emit_up_to(&mut self, index: usize, entries: &[Arc<Entry>], entry: &Entry, out: &mut Vec<Out>) {
        for missed in entries
            .iter()
            .filter(|e| e.position.offset <= entry.position.offset)
        {
            self.emit(index, missed, out);
        }
    }

    fn emit(&mut self, index: usize, entry: &Arc<Entry>, out: &mut Vec<Out>) {
        debug_assert!(
            entry.position.offset > self.positions[index].offset || self.positions[index].offset == 0
        );
        self.positions[index] = entry.position;
        out.push(Out {
            json: entry.json.clone(),
            token: self.token(),
            published: Some((entry.published_at, self.topics[index].kind())),
        });
    }

    /// `RESET` at `position`, then the topic's `SNAPSHOT` when it has one.
    async fn reset(
        &mut self,
        index: usize,
        reason: GapReason,
        position: Position,
        out: &mut Vec<Out>,
    ) -> Result<(), DeliveryError> {
        self.positions[index] = position;
        let json = reset_json(self.topics[index].name(), position, reason, chrono::Utc::now())?;
        out.push(Out {
            json,
            token: self.token(),
            published: None,
        });
        self.push_snapshot(index, out).await
    }

    async fn push_snapshot(&mut self, index: usize, out: &mut Vec<Out>) -> Result<(), DeliveryError> {
        let name = self.topics[index].name();
        let Some(state) = self.shared.snapshots.snapshot(name).await else {
            return Ok(());
        };
        let json = snapshot_json(name, self.positions[index], &state, chrono::Utc::now())?;
        out.push(Out {
            json,
            token: self.token(),
            published: None,
        });
        Ok(())
    }
}
