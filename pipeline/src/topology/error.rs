use crate::bus::BusError;
use crate::checkpoint::CheckpointError;
use crate::operator::EngineError;

/// Errors of the topology (the async runner of the operators).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("bus error: {0}")]
    Bus(#[from] BusError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("checkpoint has {found} partitions but the input topic has {expected}")]
    PartitionCount { expected: u32, found: usize },
    /// The output consumer went away; the runner stops (its last checkpoint stays valid).
    #[error("output closed")]
    OutputClosed,
    /// Shutdown came while a round waited for room in the live-state store (Redis down, its buffer full): the
    /// round's output has not left the process, and the next start takes the round again.
    #[error("stopped while waiting for the live-state store")]
    StoppedWaitingForLiveState,
    /// The live-state store refused or lost an update for good.
    #[error("live state: {0}")]
    LiveState(String),
    /// The round log could not be read or written, or a recorded round cannot be replayed.
    #[error("round log: {0}")]
    RoundLog(String),
    /// The writer epoch could not be read or persisted in the checkpoint directory.
    #[error("writer epoch: {0}")]
    WriterEpoch(String),
    /// A background task of the topology (checkpoint writing, the output writer) panicked or was cancelled.
    #[error("{task} task failed: {reason}")]
    Task { task: &'static str, reason: String },
}

impl PipelineError {
    /// The error of a background task that did not finish normally.
    pub fn task(task: &'static str, error: tokio::task::JoinError) -> PipelineError {
        PipelineError::Task {
            task,
            reason: error.to_string(),
        }
    }
}

impl PipelineError {
    /// Whether restarting the topology later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Bus(e) => e.is_retryable(),
            PipelineError::Checkpoint(CheckpointError::Io { .. }) => true,
            _ => false,
        }
    }
}
