//! The graph's second thread: runs the social side of a batch of steps while the calling thread runs the
//! referral side. One long-lived thread per graph: starting a thread per batch cost more than the work it took
//! over (a fresh stack and allocator heap, page faults included). The side's state moves to the thread with each
//! job and back with the result, so between batches the graph owns all its state (checkpoints, accessors).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::super::config::OperatorConfig;
use super::super::output::Emitter;
use super::social::SocialSide;
use super::{Step, run_social};

/// A batch for the second thread.
pub(super) struct Job {
    pub(super) side: Box<SocialSide>,
    pub(super) config: Arc<OperatorConfig>,
    pub(super) steps: Arc<Vec<Step>>,
    /// The indexes of the steps that concern the social side, ascending.
    pub(super) mine: Vec<u32>,
    /// Empty; kept for its capacity.
    pub(super) out: Emitter,
}

/// What the second thread gives back: the side, its messages, and per step it ran (`Job::mine`) the counts of
/// outputs and snapshot updates emitted once the step was done.
pub(super) struct Done {
    pub(super) side: Box<SocialSide>,
    pub(super) out: Emitter,
    pub(super) mine: Vec<u32>,
    pub(super) ends: Vec<(usize, usize)>,
}

impl Job {
    /// Runs the job on the calling thread.
    pub(super) fn run(self) -> Done {
        let Job {
            mut side,
            config,
            steps,
            mine,
            mut out,
        } = self;
        let mut ends = Vec::with_capacity(mine.len());
        for step in mine.iter().filter_map(|i| steps.get(*i as usize)) {
            run_social(&mut side, &config, step, &mut out);
            ends.push((out.outputs.len(), out.snapshots.len()));
        }
        // The events are dropped by the caller, on the thread that allocated them.
        drop(steps);
        Done {
            side,
            out,
            mine,
            ends,
        }
    }
}

/// A job's outcome: its result, or the panic of an operator on it.
type Outcome = Result<Done, Box<dyn Any + Send>>;

#[derive(Debug)]
pub(super) struct SocialWorker {
    jobs: Option<SyncSender<Job>>,
    /// In a mutex only so that the graph stays `Sync` (one job at a time: never contended).
    done: Mutex<Receiver<Outcome>>,
    thread: Option<JoinHandle<()>>,
}

impl SocialWorker {
    /// Starts the thread. If it cannot be started, every `submit` hands the job back (the caller runs it).
    pub(super) fn start() -> SocialWorker {
        let (jobs, incoming) = sync_channel::<Job>(1);
        let (outgoing, done) = sync_channel::<Outcome>(1);
        let thread = std::thread::Builder::new()
            .name("operators-social".into())
            .spawn(move || {
                for job in incoming {
                    // A panic is handed over: it goes on in the caller, as it would have on one thread.
                    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job.run()));
                    if outgoing.send(outcome).is_err() {
                        return;
                    }
                }
            });
        match thread {
            Ok(thread) => SocialWorker {
                jobs: Some(jobs),
                done: Mutex::new(done),
                thread: Some(thread),
            },
            Err(error) => {
                tracing::warn!(%error, "could not start the operators' second thread; running on one");
                SocialWorker {
                    jobs: None,
                    done: Mutex::new(done),
                    thread: None,
                }
            }
        }
    }

    /// Hands `job` to the thread, or back when the thread is gone.
    pub(super) fn submit(&self, job: Job) -> Result<(), Job> {
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    /// Waits for the submitted job: its result, or the panic of an operator on it.
    pub(super) fn finish(&mut self) -> Outcome {
        let answer = match self.done.get_mut() {
            Ok(done) => done.recv().ok(),
            Err(mut poisoned) => poisoned.get_mut().recv().ok(),
        };
        // The thread answers every job it takes (panics included) and ends only when its channel closes.
        answer.unwrap_or_else(|| {
            self.jobs = None;
            Err(Box::new("the operators' second thread ended without answering"))
        })
    }
}

/// The graph's worker, started by the first parallel run. A cloned graph (a checkpoint's copy) has none until it
/// needs one.
#[derive(Debug, Default)]
pub(super) struct WorkerSlot(pub(super) Option<SocialWorker>);

impl Clone for WorkerSlot {
    fn clone(&self) -> Self {
        WorkerSlot(None)
    }
}

impl Drop for SocialWorker {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
