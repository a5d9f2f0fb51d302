//! The private backend servers of `common::services`: each keeps its data across a stop and a restart on the same
//! port, and refuses connections while stopped (an outage, not a data loss).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::services::{self, PrivateClickHouse, PrivateRedis, port_is_open};

#[test]
fn private_redis_keeps_its_data_across_a_stop_and_restart() {
    if !services::available(
        "redis-server",
        "private_redis_keeps_its_data_across_a_stop_and_restart",
    ) {
        return;
    }
    let started = Instant::now();
    let mut redis = PrivateRedis::start();
    eprintln!(
        "private redis: started on port {} in {:?}",
        redis.port(),
        started.elapsed()
    );
    assert_ne!(redis.port(), 6379, "a private server, not the shared one");

    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    redis::cmd("SET")
        .arg("outage:key")
        .arg("kept")
        .exec(&mut connection)
        .unwrap();
    redis::cmd("RPUSH")
        .arg("outage:list")
        .arg(&["a", "b", "c"])
        .exec(&mut connection)
        .unwrap();

    let stopping = Instant::now();
    redis.stop();
    eprintln!("private redis: stopped in {:?}", stopping.elapsed());
    assert!(
        !port_is_open(redis.port()),
        "the port refuses connections while stopped"
    );
    let during_outage: redis::RedisResult<Option<String>> =
        redis::cmd("GET").arg("outage:key").query(&mut connection);
    assert!(
        during_outage.is_err(),
        "a command fails while the server is down: {during_outage:?}"
    );
    assert!(
        client.get_connection().is_err(),
        "no new connection while the server is down"
    );

    let restarting = Instant::now();
    redis.restart();
    eprintln!("private redis: restarted in {:?}", restarting.elapsed());
    let mut connection = client.get_connection().unwrap();
    let value: Option<String> = redis::cmd("GET")
        .arg("outage:key")
        .query(&mut connection)
        .unwrap();
    assert_eq!(value.as_deref(), Some("kept"));
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg("outage:list")
        .arg(0)
        .arg(-1)
        .query(&mut connection)
        .unwrap();
    assert_eq!(list, ["a", "b", "c"]);
    assert_eq!(redis.cli(&["GET", "outage:key"]), "kept");

    // Drop kills the server and removes its directory.
    let (port, dir) = (redis.port(), redis.dir().to_path_buf());
    drop(connection);
    drop(redis);
    assert!(!port_is_open(port), "dropped server still listening");
    assert!(!dir.exists(), "dropped server's directory still exists");
}

#[test]
fn private_clickhouse_keeps_its_data_across_a_stop_and_restart() {
    if !services::available(
        "clickhouse-server",
        "private_clickhouse_keeps_its_data_across_a_stop_and_restart",
    ) {
        return;
    }
    let started = Instant::now();
    let mut clickhouse = PrivateClickHouse::start();
    eprintln!(
        "private clickhouse: started on http {} / tcp {} in {:?} (version {})",
        clickhouse.http_port(),
        clickhouse.tcp_port(),
        started.elapsed(),
        clickhouse.query("SELECT version()").unwrap().trim_end()
    );
    assert_ne!(
        clickhouse.http_port(),
        8123,
        "a private server, not the shared one"
    );

    clickhouse
        .query("CREATE TABLE outage (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
        .unwrap();
    clickhouse
        .query("INSERT INTO outage VALUES (1, 'first'), (2, 'second')")
        .unwrap();

    let stopping = Instant::now();
    clickhouse.stop();
    eprintln!("private clickhouse: stopped in {:?}", stopping.elapsed());
    assert!(
        !port_is_open(clickhouse.http_port()),
        "the HTTP port refuses connections while stopped"
    );
    assert!(
        !port_is_open(clickhouse.tcp_port()),
        "the native port refuses connections while stopped"
    );
    assert!(
        clickhouse.query("SELECT 1").is_err(),
        "a query fails while the server is down"
    );

    let restarting = Instant::now();
    clickhouse.restart();
    eprintln!("private clickhouse: restarted in {:?}", restarting.elapsed());
    assert_eq!(
        clickhouse
            .query("SELECT id, name FROM outage ORDER BY id")
            .unwrap(),
        "1\tfirst\n2\tsecond\n"
    );

    // The client the system uses reads the same server by its URL.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let count: u64 = runtime.block_on(async {
        clickhouse::Client::default()
            .with_url(clickhouse.url())
            .with_validation(false)
            .query("SELECT count() FROM outage")
            .fetch_one()
            .await
            .unwrap()
    });
    assert_eq!(count, 2);

    // Drop kills the server and removes its directory.
    let (port, dir) = (clickhouse.http_port(), clickhouse.dir().to_path_buf());
    drop(clickhouse);
    assert!(!port_is_open(port), "dropped server still listening");
    assert!(!dir.exists(), "dropped server's directory still exists");
}

#[test]
fn derived_clickhouse_config_listens_only_where_told() {
    let Ok(system) = std::fs::read_to_string(services::CLICKHOUSE_CONFIG) else {
        if std::env::var(services::REQUIRE_SERVICES).is_ok_and(|value| !value.is_empty() && value != "0") {
            panic!(
                "{} is missing and REQUIRE_SERVICES is set",
                services::CLICKHOUSE_CONFIG
            );
        }
        println!(
            "SKIPPED: derived_clickhouse_config_listens_only_where_told: no {}",
            services::CLICKHOUSE_CONFIG
        );
        return;
    };
    let config = services::derive_clickhouse_config(&system, "<http_port>1</http_port>\n");
    assert!(!config.contains("<!--"));
    for gone in [
        "<tcp_port>",
        "<interserver_http_port>",
        "<listen_host>",
        "/var/lib/clickhouse",
        "/var/log",
    ] {
        assert!(!config.contains(gone), "{gone} left in the derived config");
    }
    assert_eq!(config.matches("<http_port>").count(), 1);
    // A nested element of a replaced name stays (the distributed DDL queue's ZooKeeper path).
    if system.contains("<distributed_ddl>") {
        assert!(config.contains("<path>/clickhouse/task_queue/ddl</path>"));
    }
    assert!(config.trim_end().ends_with("<http_port>1</http_port>\n</yandex>"));
}
