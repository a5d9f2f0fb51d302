//! The deployment of separate processes on a Redis Cluster (a private one of three masters, `redis+cluster://`):
//! one `pipeline` and two `delivery` nodes whose history, fan-out, tickets, stream limits and live state live in
//! the cluster's slots, every topic in the slot of its hash tag:
//! - the live state in the cluster equals the operators' reference for the same events, and every node of the
//!   cluster holds part of it;
//! - a client that read on node 1, disconnected, and resumed on node 2 gets exactly the messages it missed;
//! - a ticket issued by node 1 opens a user's private stream on node 2, once;
//! - scripts flushed from every node mid-run (as by restarts) are loaded again where they are called;
//! - a master stopped mid-run (its data kept on disk) makes the processes not ready without losing what was
//!   accepted, and they catch up when it is back (each process's cluster connection is rebuilt from the seeds:
//!   without that, node 1 never delivers again).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::backends::*;
use common::services::{PrivateRedisCluster, available};
use common::*;

const EVENTS: usize = 20_000;
const PARTITIONS: u32 = 4;
/// Clients connect after this many events ...
const CLIENTS_AT: usize = 12_000;
/// ... and node 1's client disconnects after this many.
const RESUME_AT: usize = 16_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_on_a_redis_cluster() {
    if !available("redis-server", "a_deployment_on_a_redis_cluster") {
        return;
    }
    let mut cluster = PrivateRedisCluster::start(3);
    let url = cluster.url();
    let prefix = unique_prefix("cluster");
    let data_dir = tempfile::tempdir().unwrap();
    let partitions = PARTITIONS.to_string();
    let pipeline = BinaryServer::start(&[
        "pipeline",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
        "--partitions",
        &partitions,
        "--idle-flush-ms",
        "10000",
        "--redis-url",
        &url,
        "--redis-prefix",
        &prefix,
    ]);
    let delivery = [
        "delivery",
        "--redis-url",
        url.as_str(),
        "--redis-prefix",
        prefix.as_str(),
    ];
    let node1 = BinaryServer::start(&delivery);
    let node2 = BinaryServer::start(&delivery);

    let events = generated_events(11, EVENTS);
    let expected_state = reference_state(&events, PARTITIONS).await;

    post_events(&pipeline, &events[..CLIENTS_AT]).await;
    let reference = Arc::new(Mutex::new(Vec::new()));
    let reference_task = read_stream(
        node2.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        None,
        reference.clone(),
    );
    let first = Arc::new(Mutex::new(Vec::new()));
    let first_task = read_stream(
        node1.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        None,
        first.clone(),
    );
    // Every node forgets its scripts (as after a restart): each call loads its script on its own node again.
    for node in cluster.nodes() {
        assert_eq!(node.cli(&["script", "flush"]), "OK");
    }
    let back_at = CLIENTS_AT + (RESUME_AT - CLIENTS_AT) / 2;
    // One master stops while events arrive and clients stream (the cluster refuses every command without it): the
    // pipeline and the nodes report not ready, hold what was accepted, and catch up once it is back; clients whose
    // stream ended get `503` until then and resume.
    wait_for_readiness(&pipeline, 200, Duration::from_secs(30)).await;
    cluster.nodes_mut()[1].stop();
    post_events(&pipeline, &events[CLIENTS_AT..back_at]).await;
    wait_for_readiness(&pipeline, 503, Duration::from_secs(30)).await;
    wait_for_readiness(&node1, 503, Duration::from_secs(30)).await;
    cluster.nodes_mut()[1].restart();
    let before_restart = first.lock().unwrap().len();
    cluster.wait_ok(Duration::from_secs(30));
    wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;
    wait_for_readiness(&node1, 200, Duration::from_secs(60)).await;
    // A connection to the restarted node that a process had not used since may fail its first command (a `503`
    // to an HTTP client, which retries) and is rebuilt: both nodes serve a poll again soon.
    for node in [&node1, &node2] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while get_json(&node.url("/v1/poll?topic=leaderboard.daily&wait=0"), None)
            .await
            .0
            != 200
        {
            assert!(Instant::now() < deadline, "a delivery node did not recover");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    post_events(&pipeline, &events[back_at..RESUME_AT]).await;
    wait_until_quiet(&reference, Duration::from_secs(4)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.lock().unwrap().len() < before_restart + 5 {
        assert!(
            Instant::now() < deadline,
            "node 1 delivered nothing after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first_task.abort();
    let _ = first_task.await;
    let before: Vec<Received> = first.lock().unwrap().clone();
    let last = before.last().unwrap().clone();

    post_events(&pipeline, &events[RESUME_AT..]).await;
    wait_until_quiet(&reference, Duration::from_secs(5)).await;
    let resumed = Arc::new(Mutex::new(Vec::new()));
    let resumed_task = read_stream(
        node2.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        Some(last.token.clone()),
        resumed.clone(),
    );
    wait_until_quiet(&resumed, Duration::from_secs(4)).await;
    resumed_task.abort();
    reference_task.abort();
    let reference: Vec<Received> = reference.lock().unwrap().clone();
    let resumed: Vec<Received> = resumed.lock().unwrap().clone();
    assert_resumed_exactly(&reference, &before, &resumed);

    // The live state, exactly, over the union of the nodes; each node holds a part of it.
    let node_urls = cluster.node_urls();
    wait_for_redis_state_on(&node_urls, &prefix, &expected_state, Duration::from_secs(120)).await;
    for node in cluster.nodes() {
        let keys: u64 = node.cli(&["dbsize"]).parse().unwrap();
        assert!(keys > 0, "node {} holds no key", node.port());
    }

    // A ticket from node 1 opens a private stream on node 2, once (the ticket and the user's stream leases live
    // in their own slots).
    let client = reqwest::Client::new();
    let ticket: serde_json::Value = client
        .post(node1.url("/v1/tickets"))
        .bearer_auth(token("cluster-user", &[]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = ticket["ticket"].as_str().expect("a ticket").to_owned();
    let path = format!("/v1/stream?topic=user.cluster-user.referrals&ticket={ticket}");
    let stream = client.get(node2.url(&path)).send().await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let again = client.get(node1.url(&path)).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 401, "a ticket works once");
    drop(stream);

    for server in [&pipeline, &node1, &node2] {
        let (status, body) = get_json(&server.url("/readyz"), None).await;
        assert_eq!(status, 200, "{body}");
    }
    println!(
        "{} topics of live state over {} nodes; {} public messages; resumed with {}",
        expected_state.len(),
        node_urls.len(),
        reference.len(),
        resumed.len()
    );
}
