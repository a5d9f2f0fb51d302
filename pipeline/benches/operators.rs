//! Throughput of the whole operator graph on the generator's workload.
//!
//! `cargo bench -p social-pipeline --bench operators [-- EVENTS]` (default 1,000,000 events):
//! 1. NDJSON, parse inline: `parse_event` on each line, then the engine; also the memory of the operator state
//!    (resident memory growth over the run and checkpoint size, per million active users);
//! 2. decoded: events already parsed, pushed through the engine in batches of 1,024;
//! 3. NDJSON, parse thread: one thread parses, another runs the engine (bounded channel of batches).
//!
//! The engine runs the operators on `OperatorConfig::threads` threads: `OPERATORS_THREADS=1` or `2` (default 2).
//!
//! Every run ends with `Engine::finish` (closes every window); "messages out" counts those final messages too.
//!
//! Environment: `OPERATORS_BREAKDOWN=1` prints the messages per type; `OPERATORS_DECODED_ONLY=1` stops after the
//! decoded run (profiling); `OPERATORS_DIGEST=file` writes every output and snapshot update of a full run to
//! `file` and measures nothing (compare two builds' files to check that an optimization changed no result).

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Instant;

use social_pipeline::generate::{Generator, GeneratorConfig};
use social_pipeline::operator::{Emitter, Engine, OperatorConfig};
use social_schemas::{Event, Limits, Payload, parse_event};

/// The binary's allocator (`src/main.rs`), so the figures are those of the real process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1_024;
const PARTITIONS: u32 = 4;

fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        // `cargo test --all-targets` runs this without `--bench`: a short smoke run then.
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            1_000_000
        } else {
            20_000
        });
    let generated: Vec<(u32, Vec<u8>)> = Generator::new(GeneratorConfig::with_seed(1))
        .take(count)
        .map(|g| {
            (
                social_pipeline::bus::partition::partition_for_key(g.key.as_bytes(), PARTITIONS),
                g.json,
            )
        })
        .collect();
    let ndjson_bytes: usize = generated.iter().map(|(_, j)| j.len() + 1).sum();
    let limits = Limits::default();
    let digest_path = std::env::var_os("OPERATORS_DIGEST");
    let decoded_only = std::env::var_os("OPERATORS_DECODED_ONLY").is_some();

    // 1. NDJSON bytes, one thread; also the memory run: the input bytes are already allocated and each event is
    // dropped once processed, so the resident memory growth over this run is the operator state (with the
    // allocator's overhead), which is kept until measured.
    let mut ndjson_run = None;
    if digest_path.is_none() && !decoded_only {
        let rss_before = rss_kb();
        let (started, cpu) = (Instant::now(), cpu_seconds());
        let mut engine = new_engine();
        let mut out = Emitter::default();
        let mut outputs = 0;
        for chunk in generated.chunks(BATCH) {
            for (partition, json) in chunk {
                if let Ok(event) = parse_event(json, &limits) {
                    engine.push(*partition, event, &mut out);
                }
            }
            engine.advance(&mut out);
            outputs += out.outputs.len();
            out.clear();
        }
        let (mut elapsed, mut cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        // The state while the stream runs (before `finish` closes and purges every window); not timed.
        let rss_growth_kb = rss_kb().saturating_sub(rss_before);
        let checkpoint = serde_json::to_vec(&engine.snapshot())
            .map(|v| v.len())
            .unwrap_or(0);
        let (started, cpu_finish) = (Instant::now(), cpu_seconds());
        engine.finish(&mut out);
        outputs += out.outputs.len();
        out.clear();
        elapsed += started.elapsed().as_secs_f64();
        cpu += cpu_seconds() - cpu_finish;
        ndjson_run = Some((elapsed, cpu, outputs, rss_growth_kb, checkpoint));
    }

    let decoded: Vec<(u32, Event)> = generated
        .iter()
        .filter_map(|(p, j)| parse_event(j, &limits).ok().map(|e| (*p, e)))
        .collect();
    assert_eq!(decoded.len(), count, "every generated event is valid");
    let span_s = match (decoded.first(), decoded.last()) {
        (Some(a), Some(b)) => (b.1.time - a.1.time).num_seconds(),
        _ => 0,
    };
    if let Some(path) = digest_path {
        digest(&decoded, std::path::Path::new(&path));
        return;
    }
    println!(
        "workload: {count} events, {:.1} MB NDJSON, {span_s} s of event time, {PARTITIONS} partitions; \
         operators on {} thread(s)",
        ndjson_bytes as f64 / 1e6,
        operator_threads()
    );

    // 2. Decoded.
    let input = decoded.clone();
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let (engine, outputs) = run_decoded(input);
    let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    report("decoded:", count, elapsed, cpu, outputs);
    drop(engine);
    let Some((elapsed, cpu, outputs, rss_growth_kb, checkpoint)) = ndjson_run else {
        return; // profiling the operators alone
    };
    report("ndjson, parse inline:", count, elapsed, cpu, outputs);

    // Memory per million active users.
    let users = active_users(&decoded);
    println!(
        "state: {users} active users; RSS growth {:.1} MB ({:.0} MB per million active users); checkpoint {:.1} MB \
         ({:.0} MB per million active users)",
        rss_growth_kb as f64 / 1024.0,
        rss_growth_kb as f64 / 1024.0 * 1e6 / users.max(1) as f64,
        checkpoint as f64 / 1e6,
        checkpoint as f64 / 1e6 * 1e6 / users.max(1) as f64,
    );

    // 3. NDJSON bytes, parse on one thread and operators on the other.
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let (tx, rx) = mpsc::sync_channel::<Vec<(u32, Event)>>(64);
    let outputs = std::thread::scope(|scope| {
        let generated = &generated;
        scope.spawn(move || {
            for chunk in generated.chunks(BATCH) {
                let batch = chunk
                    .iter()
                    .filter_map(|(p, j)| parse_event(j, &limits).ok().map(|e| (*p, e)))
                    .collect();
                if tx.send(batch).is_err() {
                    return;
                }
            }
        });
        let mut engine = new_engine();
        let mut out = Emitter::default();
        let mut outputs = 0;
        for batch in rx {
            for (partition, event) in batch {
                engine.push(partition, event, &mut out);
            }
            engine.advance(&mut out);
            outputs += out.outputs.len();
            out.clear();
        }
        engine.finish(&mut out);
        outputs + out.outputs.len()
    });
    report(
        "ndjson, parse thread:",
        count,
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu,
        outputs,
    );
}

/// Wall-clock rate, and the rate per CPU-second (the machine is shared: wall time includes waiting for a core).
fn report(name: &str, count: usize, wall: f64, cpu: f64, outputs: usize) {
    println!(
        "{name:<20} {:>9.0} events/s wall ({wall:.2} s) | {:>9.0} events per CPU-second ({cpu:.2} s) | {outputs} messages out",
        count as f64 / wall,
        count as f64 / cpu.max(1e-9),
    );
}

/// User + system CPU time of the whole process (from `/proc/self/stat`, 100 ticks per second).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

/// `OPERATORS_THREADS` (1 or 2; default: the configuration's default, 2).
fn operator_threads() -> usize {
    std::env::var("OPERATORS_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(OperatorConfig::default().threads)
}

fn new_engine() -> Engine {
    let config = OperatorConfig {
        threads: operator_threads(),
        ..OperatorConfig::default()
    };
    match Engine::new(config, PARTITIONS) {
        Ok(engine) => engine,
        Err(error) => panic!("default configuration is valid: {error}"),
    }
}

#[inline(never)]
fn run_decoded(events: Vec<(u32, Event)>) -> (Engine, usize) {
    let mut engine = new_engine();
    let mut out = Emitter::default();
    let mut outputs = 0;
    let mut by_type: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let breakdown = std::env::var_os("OPERATORS_BREAKDOWN").is_some();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        for (partition, event) in events.by_ref().take(BATCH) {
            engine.push(partition, event, &mut out);
        }
        engine.advance(&mut out);
        outputs += out.outputs.len();
        if breakdown {
            for o in &out.outputs {
                *by_type.entry(o.message.event_type.clone()).or_default() += 1;
            }
            *by_type.entry("(snapshot updates)".into()).or_default() += out.snapshots.len();
        }
        out.clear();
    }
    engine.finish(&mut out);
    outputs += out.outputs.len();
    out.clear();
    for (event_type, n) in by_type {
        println!("  {event_type:<40} {n:>9}");
    }
    (engine, outputs)
}

/// Writes every output and snapshot update of a full run (start, batches, finish) to `path`, one per line: the
/// reference for "same results" when optimizing (`OPERATORS_DIGEST=/tmp/a.txt cargo bench ... -- 200000`).
fn digest(events: &[(u32, Event)], path: &std::path::Path) {
    use std::io::Write;
    let Ok(file) = std::fs::File::create(path) else {
        panic!("cannot create {}", path.display());
    };
    let mut file = std::io::BufWriter::new(file);
    let mut engine = new_engine();
    let mut out = Emitter::default();
    let mut write = |out: &mut Emitter| {
        for o in &out.outputs {
            let line = serde_json::to_string(o).unwrap_or_default();
            let _ = writeln!(file, "{line}");
        }
        for s in &out.snapshots {
            let value = s
                .value
                .as_ref()
                .map(|v| serde_json::to_string(v).unwrap_or_default());
            let _ = writeln!(file, "S {} {} {}", s.topic, s.part, value.unwrap_or_default());
        }
        out.clear();
    };
    engine.start(&mut out);
    for chunk in events.chunks(BATCH) {
        for (partition, event) in chunk {
            engine.push(*partition, event.clone(), &mut out);
        }
        engine.advance(&mut out);
        write(&mut out);
    }
    engine.finish(&mut out);
    write(&mut out);
    let checkpoint = serde_json::to_string(&engine.snapshot()).unwrap_or_default();
    let _ = writeln!(file, "C {}", checkpoint.len());
}

/// Users who produced at least one event.
fn active_users(events: &[(u32, Event)]) -> usize {
    let mut users: HashSet<&str> = HashSet::new();
    for (_, e) in events {
        let user = match &e.payload {
            Payload::ShareCreated(p) => &p.user_id,
            Payload::CodeGenerated(p) => &p.user_id,
            Payload::ConversionCompleted(p) => &p.referrer_id,
            Payload::RewardEarned(p) => &p.user_id,
            Payload::UserRegistered(p) => &p.user_id,
            Payload::ProfileUpdated(p) => &p.user_id,
            Payload::ProjectCreated(p) => &p.owner_id,
            Payload::BidAwarded(p) => &p.contractor_id,
            Payload::MessageSentSocial(p) => &p.sender_id,
            Payload::TestimonialPublished(p) => &p.author_id,
            _ => continue,
        };
        users.insert(user);
    }
    users.len()
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
