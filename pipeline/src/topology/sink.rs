use tokio::sync::{mpsc, oneshot};

use super::PipelineError;
use crate::operator::Output;

/// Where the topology's output goes (the delivery hub, the output bus). `send` returning `Ok` means the batch
/// was accepted (a sink may go on working on it in the background); `flush` returning `Ok` means everything
/// accepted so far is where the sink puts it. A checkpoint is written only once the batches before it are handled
/// ([`OutputSink::request_flush`]).
pub trait OutputSink: Send {
    fn send(
        &mut self,
        batch: Vec<Output>,
    ) -> impl std::future::Future<Output = Result<(), PipelineError>> + Send;

    /// Asks for a notice of when every batch sent so far is handled, without waiting for it: the topology
    /// computes on while a checkpoint waits for its output to be out. Sinks that finish their work in `send`
    /// have nothing to wait for.
    fn request_flush(&mut self) -> impl std::future::Future<Output = Result<Handled, PipelineError>> + Send {
        async { Ok(Handled::now()) }
    }

    /// Waits until every batch sent so far is handled.
    fn flush(&mut self) -> impl std::future::Future<Output = Result<(), PipelineError>> + Send {
        async { self.request_flush().await?.wait().await }
    }
}

/// Completes once every batch a sink was sent before [`OutputSink::request_flush`] is handled.
#[derive(Debug)]
pub struct Handled(Option<oneshot::Receiver<()>>);

impl Handled {
    /// Already handled.
    pub fn now() -> Self {
        Self(None)
    }

    /// Handled when `done` is answered; the sink dropping it unanswered means it stopped first.
    pub fn when(done: oneshot::Receiver<()>) -> Self {
        Self(Some(done))
    }

    /// `Err(OutputClosed)` when the sink stopped before handling everything (its own error comes from its next
    /// call).
    pub async fn wait(self) -> Result<(), PipelineError> {
        match self.0 {
            None => Ok(()),
            Some(done) => done.await.map_err(|_| PipelineError::OutputClosed),
        }
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
