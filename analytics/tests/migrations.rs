//! Migrations against the real server (Debian's 18.16 in CI): applied once, a no-op the second time.

mod common;

use common::TestDb;
use social_analytics::{ClickHouseSink, MIGRATIONS, migrate::MigrationKind};

#[tokio::test]
async fn migrations_apply_once_and_are_version_gated() {
    let db = TestDb::new();
    let sink = ClickHouseSink::start(db.config()).expect("start");
    let first = sink.migrate().await.expect("first migrate");
    let server = social_analytics::migrate::parse_version(&first.server_version).expect("version");
    let expected: Vec<&str> = MIGRATIONS
        .iter()
        .filter(|m| m.applies_to(server))
        .map(|m| m.version)
        .collect();
    assert_eq!(first.applied, expected);
    assert!(first.already_applied.is_empty());
    if server < (21, 8) {
        let modern: Vec<&str> = MIGRATIONS
            .iter()
            .filter(|m| m.kind == MigrationKind::Modern)
            .map(|m| m.version)
            .collect();
        assert_eq!(
            first.skipped, modern,
            "modern migrations must be skipped on {}",
            first.server_version
        );
    }

    let second = sink.migrate().await.expect("second migrate");
    assert!(
        second.applied.is_empty(),
        "second run applied {:?}",
        second.applied
    );
    assert_eq!(second.already_applied, expected);

    let recorded: Vec<String> = db
        .client()
        .query("SELECT version FROM schema_migrations FINAL ORDER BY version")
        .fetch_all()
        .await
        .expect("schema_migrations");
    assert_eq!(recorded, expected);
    sink.shutdown(std::time::Duration::from_secs(5))
        .await
        .expect("shutdown");
}
