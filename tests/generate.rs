//! `generate`: reproducible from its seed, and every line is a valid event; with `--fluvio-endpoint` (tested when
//! `FLUVIO_ENDPOINT` is set) the same events land on the input topic, partitioned by key like the ingest does.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use social_schemas::{Limits, parse_event};

fn generate(args: &[&str]) -> Vec<u8> {
    let output = Command::new(env!("CARGO_BIN_EXE_social-realtime"))
        .arg("generate")
        .args(args)
        // Only the arguments say where the events go.
        .env_remove("GENERATE_TARGET")
        .env_remove("FLUVIO_ENDPOINT")
        .env_remove("FLUVIO_TOPIC_PREFIX")
        .env_remove("FLUVIO_RETENTION_SECS")
        .env_remove("FLUVIO_REPLICATION")
        .env_remove("INPUT_PARTITIONS")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn same_seed_same_bytes_and_every_line_validates() {
    let first = generate(&["--seed", "7", "--count", "100000"]);
    let second = generate(&["--seed", "7", "--count", "100000"]);
    assert!(first == second, "two runs with --seed 7 differ");
    let lines: Vec<&[u8]> = first
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 100_000);
    let limits = Limits::default();
    let mut ids = std::collections::HashSet::new();
    for (number, line) in lines.iter().enumerate() {
        let event = parse_event(line, &limits).unwrap_or_else(|error| {
            panic!("line {}: {error}: {}", number + 1, String::from_utf8_lossy(line))
        });
        assert!(
            ids.insert((event.source.clone(), event.id.clone())),
            "duplicate id on line {}",
            number + 1
        );
    }
    let other_seed = generate(&["--seed", "8", "--count", "1000"]);
    assert_ne!(other_seed, first[..other_seed.len().min(first.len())].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produces_the_same_events_to_fluvio_partitioned_by_key() {
    let Some(endpoint) =
        common::fluvio::endpoint("generate::produces_the_same_events_to_fluvio_partitioned_by_key")
    else {
        return;
    };
    fluvio_case::run(&endpoint).await;
}

#[cfg(not(feature = "fluvio"))]
mod fluvio_case {
    pub(super) async fn run(_endpoint: &str) {
        panic!("FLUVIO_ENDPOINT is set but this build has no Fluvio client (feature `fluvio`)");
    }
}

#[cfg(feature = "fluvio")]
mod fluvio_case {
    use std::collections::BTreeSet;

    use social_pipeline::bus::fluvio::client as fluvio;
    use social_pipeline::bus::partition::partition_for_key;
    use social_pipeline::bus::{INPUT_TOPIC, TopicSpec};

    pub(super) async fn run(endpoint: &str) {
        const COUNT: usize = 5_000;
        // Not the default 4: `--partitions` is honoured.
        const PARTITIONS: u32 = 3;
        let prefix = super::common::fluvio::unique_prefix("gen");
        let count = COUNT.to_string();
        let expected = super::generate(&["--seed", "5", "--count", &count]);
        let expected: BTreeSet<Vec<u8>> = expected
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(expected.len(), COUNT);
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_social-realtime"))
            .args(["generate", "--seed", "5", "--count", &count, "--batch", "700"])
            .args(["--fluvio-endpoint", endpoint, "--fluvio-topic-prefix", &prefix])
            .args([
                "--fluvio-retention-secs",
                "5400",
                "--partitions",
                &PARTITIONS.to_string(),
            ])
            .env_remove("GENERATE_TARGET")
            .env_remove("FLUVIO_REPLICATION")
            .env_remove("INPUT_PARTITIONS")
            .status()
            .unwrap();
        assert!(status.success());

        let bus = super::common::fluvio::connect(endpoint, &prefix).await;
        bus.ensure_topic(&TopicSpec {
            name: INPUT_TOPIC.into(),
            partitions: PARTITIONS,
        })
        .await
        .unwrap();
        let mut got = BTreeSet::new();
        for partition in 0..PARTITIONS {
            for record in super::common::fluvio::read_partition(bus.as_ref(), INPUT_TOPIC, partition).await {
                assert_eq!(
                    partition_for_key(&record.key, PARTITIONS),
                    partition,
                    "a record keyed {:?} on the wrong partition",
                    record.key
                );
                assert!(got.insert(record.value.to_vec()), "an event produced twice");
            }
        }
        bus.close().await.unwrap();

        // Created as configured, under the prefixed name.
        let client = fluvio::Fluvio::connect_with_config(&fluvio::FluvioClusterConfig::new(endpoint))
            .await
            .unwrap();
        let name = format!("{prefix}{INPUT_TOPIC}");
        let topics = client
            .admin()
            .await
            .list::<fluvio::metadata::topic::TopicSpec, String>(vec![name.clone()])
            .await
            .unwrap();
        let topic = topics
            .iter()
            .find(|topic| topic.name == name)
            .expect("the prefixed topic");
        assert_eq!(topic.spec.partitions(), PARTITIONS);
        assert_eq!(topic.spec.replication_factor(), Some(1));
        let fluvio::metadata::topic::CleanupPolicy::Segment(policy) =
            topic.spec.get_clean_policy().expect("a retention policy");
        assert_eq!(policy.time_in_seconds, 5400);

        assert!(
            got == expected,
            "Fluvio holds {} events, not the {} generated",
            got.len(),
            expected.len()
        );
    }
}
