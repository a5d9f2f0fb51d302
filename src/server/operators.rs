//! Wiring of the stream operators into the process: where their output goes and where snapshots are read.
//!
//! Every output message is appended, in order, to the derived-events topic `social-derived` as a CloudEvent
//! (type = the message's event type, `subject` = its SSE topic): that log is the output for other systems and what
//! makes recovery exact. Messages bound for SSE are then handed to the delivery tier.
//!
//! Exactly once across a crash: the operators checkpoint their state with the number of outputs they had emitted.
//! After a restart they replay from the checkpoint and emit the outputs that followed it again, with the same ids
//! and the same output numbers; the first `log length - outputs at checkpoint` of those are already in the log and
//! are skipped here, and the delivery tier's history drops those it already holds (it keeps the last output number
//! per topic, see [`Publisher::publish_batch_sequenced`]).
//!
//! The writing runs in a task of its own, a few batches behind the operators (bounded); a checkpoint is written only
//! once the writer has handled every output before it, so a checkpoint never counts an output that is not in the
//! log and the delivery tier.
//! The log gets every output in order; the delivery tier gets each topic's outputs in order, and a small batch's
//! messages may go ahead of the rest of a large batch on other topics (`publish_queue`), so that the thousands of
//! messages of an event-time tick do not hold back the confirmations of the events that follow it.
//! While the delivery tier's store (Redis) is unreachable, publishing is retried with backoff until it succeeds or
//! the process shuts down: the writer, then the operators, wait (their input stays on the bus), nothing is dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use social_delivery::{Publisher, SnapshotSource};
use social_pipeline::bus::{Bus, Record, TopicSpec, append_when_room};
use social_pipeline::checkpoint::Lineage;
use social_pipeline::operator::{Destination, Output};
use social_pipeline::topology::{Handled, OutputSink, PipelineError, SnapshotStore};
use social_schemas::TopicMessage;
use social_schemas::derived::MessageData;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::publish_queue::{ChunkSize, PublishQueue};

/// The topic holding every derived message, in emission order.
pub const DERIVED_TOPIC: &str = "social-derived";
/// `source` of the derived CloudEvents.
const DERIVED_SOURCE: &str = "/social-realtime/operators";

/// Batches the writer's channel holds: the operators compute the next rounds while the writer appends and
/// publishes, and wait when it falls behind (the channel full, and [`MAX_WAITING`] messages waiting).
const QUEUED_BATCHES: usize = 4;
/// Messages waiting for the delivery tier beyond which the writer takes no further batch.
const MAX_WAITING: usize = 65_536;
/// One publish call: messages of later batches that may overtake the oldest waiting ones, then those.
const PUBLISH_CHUNK: ChunkSize = ChunkSize {
    oldest: 256,
    ahead: 256,
};

/// The topology's output sink: hands each batch to a writer task (appends to `social-derived`, then publishes to
/// the delivery tier), so that the operators compute the next round meanwhile. `flush` waits for the writer.
pub struct DerivedSink {
    jobs: mpsc::Sender<Job>,
    writer: Option<JoinHandle<Result<(), PipelineError>>>,
}

enum Job {
    Batch(Vec<Output>),
    /// Answered once every batch before it is handled.
    Barrier(oneshot::Sender<()>),
}

impl DerivedSink {
    /// `outputs_at_checkpoint` is what the restored topology reports as emitted before its checkpoint, `lineage`
    /// where its output numbers start.
    pub async fn open(
        bus: Arc<dyn Bus>,
        publisher: Publisher,
        outputs_at_checkpoint: u64,
        lineage: Lineage,
        shutdown: CancellationToken,
    ) -> Result<Self, PipelineError> {
        let writer = DerivedWriter::open(bus, publisher, outputs_at_checkpoint, lineage, shutdown).await?;
        let (jobs, queue) = mpsc::channel(QUEUED_BATCHES);
        Ok(Self {
            jobs,
            writer: Some(tokio::spawn(writer.run(queue))),
        })
    }

    /// The writer's error, once it has stopped (it stops only on an error).
    async fn writer_error(&mut self) -> PipelineError {
        match self.writer.take() {
            Some(handle) => match handle.await {
                Ok(Err(error)) => error,
                Ok(Ok(())) => PipelineError::OutputClosed,
                Err(join) => PipelineError::task("derived writer", join),
            },
            None => PipelineError::OutputClosed,
        }
    }
}

impl OutputSink for DerivedSink {
    async fn send(&mut self, batch: Vec<Output>) -> Result<(), PipelineError> {
        if self.jobs.send(Job::Batch(batch)).await.is_err() {
            return Err(self.writer_error().await);
        }
        Ok(())
    }

    async fn request_flush(&mut self) -> Result<Handled, PipelineError> {
        let (done, handled) = oneshot::channel();
        if self.jobs.send(Job::Barrier(done)).await.is_err() {
            return Err(self.writer_error().await);
        }
        Ok(Handled::when(handled))
    }

    async fn flush(&mut self) -> Result<(), PipelineError> {
        if self.request_flush().await?.wait().await.is_err() {
            return Err(self.writer_error().await);
        }
        Ok(())
    }
}

/// The end of the derived log (created when missing): where a lineage that begins now starts there.
pub async fn derived_log_end(bus: &dyn Bus) -> Result<u64, PipelineError> {
    bus.ensure_topic(&TopicSpec {
        name: DERIVED_TOPIC.to_string(),
        partitions: 1,
    })
    .await?;
    Ok(bus.end_offset(DERIVED_TOPIC, 0).await?)
}

/// Writes the batches: the derived log in output order, then the delivery tier in each topic's order.
struct DerivedWriter {
    bus: Arc<dyn Bus>,
    publisher: Publisher,
    /// Outputs at the start of the run that the log already holds (re-emitted after a restore).
    already_written: u64,
    /// The number of the next output: the lineage's base plus the outputs counted from its very first run.
    next_sequence: u64,
    shutdown: CancellationToken,
}

impl DerivedWriter {
    async fn open(
        bus: Arc<dyn Bus>,
        publisher: Publisher,
        outputs_at_checkpoint: u64,
        lineage: Lineage,
        shutdown: CancellationToken,
    ) -> Result<Self, PipelineError> {
        bus.ensure_topic(&TopicSpec {
            name: DERIVED_TOPIC.to_string(),
            partitions: 1,
        })
        .await?;
        let written = bus.end_offset(DERIVED_TOPIC, 0).await?;
        // What a log outliving the pipeline (a Fluvio topic) holds from before this lineage's start is not its own.
        let already_written = written.saturating_sub(
            lineage
                .derived_start
                .unwrap_or(0)
                .saturating_add(outputs_at_checkpoint),
        );
        if already_written > 0 {
            tracing::info!(
                already_written,
                "outputs after the last checkpoint are already written; skipping them"
            );
        }
        Ok(Self {
            bus,
            publisher,
            already_written,
            next_sequence: lineage.sequence_base.saturating_add(outputs_at_checkpoint),
            shutdown,
        })
    }

    /// Handles jobs until the sink is dropped (`Ok`, once everything received is published) or an output cannot be
    /// written (`Err`, which the sink's next call reports).
    ///
    /// Batches are appended to the derived log as they come and queued for the delivery tier, which gets one chunk
    /// per call (see [`PublishQueue`]); between calls the writer takes the batches that arrived meanwhile, as long
    /// as at most [`MAX_WAITING`] messages wait, so that a later small batch can overtake a large one. A barrier is
    /// answered once every output before it is published.
    async fn run(mut self, mut queue: mpsc::Receiver<Job>) -> Result<(), PipelineError> {
        let mut waiting = PublishQueue::default();
        let mut barriers: VecDeque<(u64, oneshot::Sender<()>)> = VecDeque::new();
        let mut open = true;
        loop {
            while let Some((bound, _)) = barriers.front() {
                if waiting.oldest().is_some_and(|oldest| oldest < *bound) {
                    break;
                }
                if let Some((_, done)) = barriers.pop_front() {
                    let _ = done.send(());
                }
            }
            if waiting.is_empty() {
                if !open {
                    return Ok(());
                }
                match queue.recv().await {
                    Some(job) => self.take(job, &mut waiting, &mut barriers).await?,
                    None => return Ok(()),
                }
            }
            while open && waiting.len() < MAX_WAITING {
                match queue.try_recv() {
                    Ok(job) => self.take(job, &mut waiting, &mut barriers).await?,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            metrics::gauge!("pipeline_delivery_waiting_messages").set(waiting.len() as f64);
            let chunk = waiting.next_chunk(PUBLISH_CHUNK);
            if !chunk.is_empty() {
                self.publish_with_retry(&chunk).await?;
            }
        }
    }

    async fn take(
        &mut self,
        job: Job,
        waiting: &mut PublishQueue,
        barriers: &mut VecDeque<(u64, oneshot::Sender<()>)>,
    ) -> Result<(), PipelineError> {
        match job {
            Job::Batch(batch) => {
                if let Err(error) = self.receive(batch, waiting).await {
                    tracing::error!(%error, "writing derived output failed");
                    return Err(error);
                }
            }
            Job::Barrier(done) => barriers.push_back((self.next_sequence, done)),
        }
        Ok(())
    }

    /// Appends `batch` to the derived log and queues its outputs bound for the delivery tier.
    async fn receive(&mut self, batch: Vec<Output>, waiting: &mut PublishQueue) -> Result<(), PipelineError> {
        let first = self.next_sequence;
        let count = batch.len() as u64;
        let skip = usize::try_from(self.already_written)
            .unwrap_or(usize::MAX)
            .min(batch.len());
        let fresh = &batch[skip..];
        if !fresh.is_empty() {
            let now_ms = chrono::Utc::now().timestamp_millis();
            let records = fresh
                .iter()
                .map(|output| derived_record(output, now_ms))
                .collect();
            // Waits while the log is full: retention keeps what the analytics feed has not read (up to the bus's
            // cap), so a long ClickHouse outage stalls the operators rather than costing snapshot rows. Shutdown
            // first: the outputs are produced again after the restart's replay.
            append_when_room(&*self.bus, DERIVED_TOPIC, 0, records, &self.shutdown).await?;
        }
        self.already_written -= skip as u64;
        // Every output bound for SSE, including those the log already held: history drops what it has.
        let to_sse = (first..)
            .zip(batch)
            .filter(|(_, output)| output.destination.to_sse())
            .map(|(sequence, output)| (output.message, sequence));
        self.next_sequence = first + count;
        waiting.push_batch(to_sse, self.next_sequence);
        Ok(())
    }

    /// Publishes `batch` (outputs with their numbers) to the delivery tier in order, retrying while its store is
    /// unavailable (publishing the same batch again appends only what is missing). `Err` only when shutdown comes
    /// first: the outputs are published again after the restart's replay.
    async fn publish_with_retry(&self, batch: &[(TopicMessage, u64)]) -> Result<(), PipelineError> {
        let mut backoff = Duration::from_millis(50);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.publisher.publish_batch_sequenced(batch).await {
                Ok(outcome) => {
                    if outcome.refused > 0 {
                        // Messages the delivery tier refuses for good (not a topic it serves) stay in the
                        // derived log; counted, and logged by the publisher.
                        metrics::counter!("pipeline_delivery_publish_failures_total")
                            .increment(outcome.refused as u64);
                    }
                    return Ok(());
                }
                Err(error) => {
                    metrics::counter!("pipeline_delivery_publish_retries_total").increment(1);
                    if attempt == 1 || attempt.is_power_of_two() {
                        tracing::warn!(%error, attempt, "delivery publish failed, retrying");
                    }
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Err(PipelineError::OutputClosed),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// A derived message as a CloudEvent. Fields in sorted order, as the JSON object this form replaced; the payload is
/// written as it is (no reparse).
#[derive(Serialize)]
struct DerivedEvent<'a> {
    data: &'a MessageData,
    datacontenttype: &'static str,
    destination: &'static str,
    id: &'a str,
    source: &'static str,
    specversion: &'static str,
    subject: &'a str,
    time: String,
    #[serde(rename = "type")]
    event_type: &'a str,
}

fn derived_record(output: &Output, now_ms: i64) -> Record {
    let message = &output.message;
    let destination = match output.destination {
        Destination::Sse => "sse",
        Destination::Bus => "bus",
        Destination::SseAndBus => "sse+bus",
        Destination::LateData => "late",
    };
    let event = DerivedEvent {
        data: &message.data,
        datacontenttype: "application/json",
        destination,
        id: &message.id,
        source: DERIVED_SOURCE,
        specversion: "1.0",
        subject: &message.topic,
        time: message
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        event_type: &message.event_type,
    };
    let value = serde_json::to_vec(&event).unwrap_or_default();
    Record {
        key: Bytes::from(message.topic.clone()),
        value: Bytes::from(value),
        timestamp_ms: now_ms,
    }
}

/// The operators' current state of each topic, for `SNAPSHOT` messages and the snapshot route.
pub struct OperatorSnapshots(pub SnapshotStore);

#[async_trait]
impl SnapshotSource for OperatorSnapshots {
    async fn snapshot(&self, topic: &str) -> Option<Value> {
        self.0.get(topic)
    }
}
