//! `run` (everything in one process) and `pipeline` (the pipeline tier alone).

use std::sync::Arc;
use std::time::Duration;

use social_pipeline::generate::{Generator, GeneratorConfig};
use social_pipeline::ingest::Ingestor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth_config;
use crate::cli::{RunArgs, ServerArgs};
use crate::server::{self, System};

pub async fn run_embedded(args: RunArgs) -> anyhow::Result<()> {
    let demo = args.demo.then_some(DemoFeed {
        rate: args.demo_rate,
        seed: args.demo_seed,
    });
    serve_system(&args.server, demo).await
}

pub async fn run_pipeline(args: ServerArgs) -> anyhow::Result<()> {
    serve_system(&args, None).await
}

struct DemoFeed {
    rate: f64,
    seed: u64,
}

async fn serve_system(args: &ServerArgs, demo: Option<DemoFeed>) -> anyhow::Result<()> {
    let auth = auth_config(&args.auth, demo.is_some())?;
    let shutdown = CancellationToken::new();
    let system = Arc::new(System::open(args, &auth, demo.is_some(), shutdown.clone()).await?);
    server::cancel_on_signal(shutdown.clone());
    let tracker = TaskTracker::new();
    tracker.spawn(system.delivery.maintenance());
    system.start_operators(&tracker, shutdown.clone()).await?;
    system.start_analytics(&tracker, shutdown.clone());
    if let Some(feed) = demo {
        tracker.spawn(feed_demo(system.ingestor.clone(), feed, shutdown.clone()));
    }
    let listener = server::bind(args.listen).await?;
    let served = server::serve(system.clone(), listener).await;
    // Drain in order: sources stop first (HTTP is closed, the demo feed ends), then the bus is flushed.
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    system.close().await;
    if let Some(failure) = system.operators_failure() {
        anyhow::bail!("the operators stopped: {failure}");
    }
    served
}

/// Feeds generated events into the ingest at `rate` events per second of wall time, with event times starting
/// now, until `shutdown`.
async fn feed_demo(ingestor: Arc<Ingestor>, feed: DemoFeed, shutdown: CancellationToken) {
    let config = GeneratorConfig {
        seed: feed.seed,
        start_time: chrono::Utc::now(),
        events_per_second: feed.rate.max(1.0),
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(config);
    let tick = Duration::from_millis(100);
    let per_tick = (feed.rate * tick.as_secs_f64()).max(1.0);
    let mut owed = 0.0;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        owed += per_tick;
        let count = owed.floor() as usize;
        owed -= count as f64;
        let batch: Vec<Vec<u8>> = generator.by_ref().take(count).map(|event| event.json).collect();
        let items: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        match ingestor.ingest(&items, "application/cloudevents+json").await {
            Ok(report) if !report.rejected.is_empty() => {
                tracing::warn!(
                    rejected = report.rejected.len(),
                    "demo generator produced rejected events"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "demo feed could not ingest; retrying on the next tick"),
        }
    }
}
