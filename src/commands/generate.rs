//! `generate`: synthetic traffic as NDJSON on stdout, or posted in NDJSON batches to an ingest endpoint.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use social_pipeline::generate::{Generator, GeneratorConfig, write_ndjson};

use crate::cli::GenerateArgs;

pub async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let mut config = GeneratorConfig {
        seed: args.seed,
        users: args.users,
        ..GeneratorConfig::default()
    };
    if let Some(start) = &args.start_time {
        config.start_time = if start == "now" {
            // Paced from now: event time follows the clock (the ingest refuses events dated far ahead).
            if args.rate > 0.0 {
                config.events_per_second = args.rate;
            }
            Utc::now()
        } else {
            DateTime::parse_from_rfc3339(start)
                .context("--start-time must be RFC 3339 or `now`")?
                .with_timezone(&Utc)
        };
    }
    if let Some(endpoint) = &args.fluvio_endpoint {
        return produce_to_fluvio(endpoint, &args, config).await;
    }
    match &args.target {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            if args.count == 0 {
                for event in Generator::new(config) {
                    out.write_all(&event.json)?;
                    out.write_all(b"\n")?;
                }
            } else {
                write_ndjson(config, args.count, &mut out)?;
            }
            out.flush()?;
            Ok(())
        }
        Some(target) => post_to(target, &args, config).await,
    }
}

/// Posts batches to `target`, paced to `args.rate` events per second, retrying `503` and connection errors.
async fn post_to(target: &str, args: &GenerateArgs, config: GeneratorConfig) -> anyhow::Result<()> {
    let token = args
        .token
        .as_deref()
        .context("posting needs a service token: --token / SERVICE_TOKEN")?;
    let client = reqwest::Client::new();
    let batch_size = args.batch.max(1);
    let mut generator = Generator::new(config);
    let started = Instant::now();
    let mut sent: u64 = 0;
    loop {
        let remaining = if args.count == 0 {
            batch_size as u64
        } else {
            args.count - sent
        };
        if remaining == 0 {
            break;
        }
        let take = remaining.min(batch_size as u64) as usize;
        let mut body = Vec::with_capacity(take * 400);
        for event in generator.by_ref().take(take) {
            body.extend_from_slice(&event.json);
            body.push(b'\n');
        }
        send_with_retry(&client, target, token, body).await?;
        sent += take as u64;
        if args.rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "sent {sent} events in {secs:.2} s ({:.0} events/s)",
        sent as f64 / secs.max(1e-9)
    );
    Ok(())
}

async fn send_with_retry(
    client: &reqwest::Client,
    target: &str,
    token: &str,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=10 {
        let response = client
            .post(target)
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(body.clone())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if response.status().as_u16() == 503 => {
                tracing::warn!(attempt, "target busy, retrying");
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                anyhow::bail!(
                    "target answered {status}: {}",
                    text.chars().take(2000).collect::<String>()
                );
            }
            Err(error) => tracing::warn!(attempt, %error, "target unreachable, retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    anyhow::bail!("target {target} kept failing; giving up after 10 attempts")
}

/// Produces to the input topic of a Fluvio cluster, keyed and partitioned like the HTTP ingest does.
#[cfg(feature = "fluvio")]
async fn produce_to_fluvio(
    endpoint: &str,
    args: &GenerateArgs,
    config: GeneratorConfig,
) -> anyhow::Result<()> {
    use social_pipeline::bus::fluvio::FluvioBus;
    use social_pipeline::bus::partition::partition_for_key;
    use social_pipeline::bus::{Bus, INPUT_TOPIC, Record, TopicSpec};

    let bus = FluvioBus::connect(args.fluvio.bus_config(endpoint)).await?;
    bus.ensure_topic(&TopicSpec {
        name: INPUT_TOPIC.to_string(),
        partitions: args.partitions,
    })
    .await?;
    let partitions = bus.partitions(INPUT_TOPIC)?;
    let started = Instant::now();
    let mut generator = Generator::new(config);
    let mut sent: u64 = 0;
    while args.count == 0 || sent < args.count {
        let take = if args.count == 0 {
            args.batch
        } else {
            (args.count - sent).min(args.batch as u64) as usize
        };
        let mut by_partition: Vec<Vec<Record>> = vec![Vec::new(); partitions as usize];
        let now_ms = Utc::now().timestamp_millis();
        for event in generator.by_ref().take(take) {
            let partition = partition_for_key(event.key.as_bytes(), partitions) as usize;
            if let Some(records) = by_partition.get_mut(partition) {
                records.push(Record {
                    key: event.key.into_bytes().into(),
                    value: event.json.into(),
                    timestamp_ms: now_ms,
                });
            }
        }
        for (partition, records) in by_partition.into_iter().enumerate() {
            if !records.is_empty() {
                bus.append(INPUT_TOPIC, partition as u32, records).await?;
            }
        }
        sent += take as u64;
        if args.rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let topic = bus.config().cluster_topic(INPUT_TOPIC);
    bus.close().await?;
    eprintln!(
        "produced {sent} events to {topic} in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(not(feature = "fluvio"))]
async fn produce_to_fluvio(
    _endpoint: &str,
    _args: &GenerateArgs,
    _config: GeneratorConfig,
) -> anyhow::Result<()> {
    anyhow::bail!("this build has no Fluvio client: build with the `fluvio` feature (on by default)")
}
