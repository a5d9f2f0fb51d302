//! The pipeline's [`LiveState`] over [`RedisStateSink`]: the topology's stamps become the fencing versions.

use async_trait::async_trait;
use social_pipeline::operator::SnapshotUpdate;
use social_pipeline::topology::{LiveState, PipelineError, StateStamp};

use crate::{RedisStateSink, StateVersion};

#[async_trait]
impl LiveState for RedisStateSink {
    async fn apply(&self, stamp: StateStamp, updates: Vec<SnapshotUpdate>) -> Result<(), PipelineError> {
        RedisStateSink::apply(self, StateVersion::new(stamp.epoch, stamp.round), updates)
            .await
            .map_err(|error| PipelineError::LiveState(error.to_string()))
    }

    async fn flush(&self) -> Result<(), PipelineError> {
        RedisStateSink::flush(self)
            .await
            .map_err(|error| PipelineError::LiveState(error.to_string()))
    }
}
