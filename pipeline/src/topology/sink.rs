use tokio::sync::mpsc;

use super::PipelineError;
use crate::operator::Output;

/// Where the topology's output goes (the delivery hub, the output bus). `send` returning `Ok` means the batch
/// was accepted (a sink may go on working on it in the background); `flush` returning `Ok` means everything
/// accepted so far is where the sink puts it. The topology checkpoints (and commits offsets) only after a flush.
pub trait OutputSink: Send {
    fn send(
        &mut self,
        batch: Vec<Output>,
    ) -> impl std::future::Future<Output = Result<(), PipelineError>> + Send;

    /// Waits until every batch sent so far is handled. Sinks that finish their work in `send` have nothing to do.
    fn flush(&mut self) -> impl std::future::Future<Output = Result<(), PipelineError>> + Send {
        async { Ok(()) }
    }
}

/// A bounded channel of single messages: backpressure reaches the topology when the consumer is slow.
impl OutputSink for mpsc::Sender<Output> {
    async fn send(&mut self, batch: Vec<Output>) -> Result<(), PipelineError> {
        for output in batch {
            mpsc::Sender::send(self, output)
                .await
                .map_err(|_| PipelineError::OutputClosed)?;
        }
        Ok(())
    }
}

/// A bounded channel of batches (fewer wake-ups at high rates).
impl OutputSink for mpsc::Sender<Vec<Output>> {
    async fn send(&mut self, batch: Vec<Output>) -> Result<(), PipelineError> {
        mpsc::Sender::send(self, batch)
            .await
            .map_err(|_| PipelineError::OutputClosed)
    }
}

/// Collects everything (tests).
impl OutputSink for Vec<Output> {
    async fn send(&mut self, batch: Vec<Output>) -> Result<(), PipelineError> {
        self.extend(batch);
        Ok(())
    }
}
