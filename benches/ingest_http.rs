//! Ingest throughput over HTTP: NDJSON batches of generated events posted by concurrent keep-alive clients to an
//! in-process server on loopback, with the in-memory bus and with the durable (fsync) bus.
//!
//! `cargo bench --bench ingest_http` (options after `--`: `--events N`, `--batch N`, `--clients N`, `--only memory|durable`).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use social_auth::{AuthConfig, Minter};
use social_pipeline::generate::{Generator, GeneratorConfig};
use social_realtime::cli::ServerArgs;
use social_realtime::server::System;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "benchmark-secret-of-at-least-32-bytes-long";

struct Options {
    events: usize,
    batch: usize,
    clients: usize,
    only: Option<String>,
}

fn options() -> Options {
    let mut options = Options {
        events: 1_000_000,
        batch: 1000,
        clients: 8,
        only: None,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--events" => options.events = value.parse().unwrap(),
            "--batch" => options.batch = value.parse().unwrap(),
            "--clients" => options.clients = value.parse().unwrap(),
            "--only" => options.only = Some(value),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    options
}

fn server_args(data_dir: Option<&std::path::Path>) -> ServerArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        server: ServerArgs,
    }
    let mut args = vec![
        "bench".to_string(),
        "--jwt-secret".into(),
        SECRET.into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    if let Some(dir) = data_dir {
        args.extend(["--data-dir".into(), dir.display().to_string()]);
    }
    let mut server = Wrapper::parse_from(args).server;
    // Ingest alone: no backend from the environment.
    server.redis_url = None;
    server.clickhouse_url = None;
    server.fluvio_endpoint = None;
    server
}

async fn run(name: &str, data_dir: Option<&std::path::Path>, bodies: Arc<Vec<Vec<u8>>>, options: &Options) {
    let config = AuthConfig::hs256(SECRET);
    let shutdown = CancellationToken::new();
    let system = Arc::new(
        System::open(&server_args(data_dir), &config, false, shutdown.clone())
            .await
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/events", listener.local_addr().unwrap());
    let server = tokio::spawn(social_realtime::server::serve(system.clone(), listener));
    let token = Minter::new(&config)
        .unwrap()
        .mint(
            "bench",
            &["service".into()],
            &[],
            Duration::from_secs(3600),
            now(),
        )
        .unwrap();

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..options.clients {
        let (bodies, next, url, token) = (bodies.clone(), next.clone(), url.clone(), token.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(index) else { return };
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status().as_u16(),
                    202,
                    "{}",
                    response.text().await.unwrap()
                );
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = system.ingestor.stats().snapshot();
    assert_eq!(stats.accepted as usize, options.events);
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "ingest_http/{name}: {} events in {:.2} s = {:.0} events/s ({:.1} MB/s), batch {}, {} clients",
        options.events,
        elapsed,
        options.events as f64 / elapsed,
        bytes as f64 / elapsed / 1e6,
        options.batch,
        options.clients
    );
    shutdown.cancel();
    let _ = server.await;
    system.close().await;
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn main() {
    let mut options = options();
    // `cargo test --all-targets` runs this binary without `--bench`: a quick smoke run then.
    if !std::env::args().any(|arg| arg == "--bench") {
        options.events = options.events.min(5_000);
        options.clients = options.clients.min(2);
    }
    let mut generator = Generator::new(GeneratorConfig {
        seed: 42,
        ..GeneratorConfig::default()
    });
    let bodies: Vec<Vec<u8>> = (0..options.events.div_ceil(options.batch))
        .map(|b| {
            let count = options.batch.min(options.events - b * options.batch);
            let mut body = Vec::with_capacity(count * 400);
            for event in generator.by_ref().take(count) {
                body.extend_from_slice(&event.json);
                body.push(b'\n');
            }
            body
        })
        .collect();
    let bodies = Arc::new(bodies);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        if options.only.as_deref() != Some("durable") {
            run("memory", None, bodies.clone(), &options).await;
        }
        if options.only.as_deref() != Some("memory") {
            let dir = tempfile::tempdir().unwrap();
            run("durable", Some(dir.path()), bodies.clone(), &options).await;
        }
    });
}
