//! Migrations: the SQL files of `schemas/clickhouse/`, embedded at build time, applied in order and recorded in
//! `schema_migrations`. `core/` runs everywhere (ClickHouse 18.16 and later); a file of `modern/` declares
//! `-- min_server_version: X.Y` and is applied only when the server is at least that version.

use chrono::Utc;
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::error::{AnalyticsError, Result};

/// One migration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// File stem, e.g. `0001_raw_events`; ordered, unique.
    pub version: &'static str,
    /// `core` or `modern`.
    pub kind: MigrationKind,
    pub sql: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationKind {
    Core,
    Modern,
}

impl MigrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationKind::Core => "core",
            MigrationKind::Modern => "modern",
        }
    }
}

macro_rules! migration {
    ($kind:ident, $dir:literal, $version:literal) => {
        Migration {
            version: $version,
            kind: MigrationKind::$kind,
            sql: include_str!(concat!("../../schemas/clickhouse/", $dir, "/", $version, ".sql")),
        }
    };
}

/// Days `raw_events` keeps a row where the modern migration `0101_raw_events_ttl` applies (its TTL).
pub const RAW_EVENTS_TTL_DAYS: i64 = 90;
/// The migration that gives `raw_events` its TTL.
pub(crate) const RAW_EVENTS_TTL_MIGRATION: &str = "0101_raw_events_ttl";

/// Every migration, in application order. A test checks this list against the files on disk.
pub const MIGRATIONS: &[Migration] = &[
    migration!(Core, "core", "0000_schema_migrations"),
    migration!(Core, "core", "0001_raw_events"),
    migration!(Core, "core", "0002_referral_codes"),
    migration!(Core, "core", "0003_minute_aggregates"),
    migration!(Core, "core", "0004_snapshots"),
    migration!(Core, "core", "0005_delivery_latency"),
    migration!(Core, "core", "0006_dead_letters"),
    migration!(Core, "core", "0007_share_contents"),
    migration!(Core, "core", "0008_referral_code_creations"),
    migration!(Modern, "modern", "0101_raw_events_ttl"),
    migration!(Modern, "modern", "0102_low_cardinality"),
    migration!(Modern, "modern", "0103_event_time64"),
    migration!(Modern, "modern", "0104_dead_letters_ttl"),
];

impl Migration {
    /// The statements of the file: `--` comment lines removed, split on `;`.
    pub fn statements(&self) -> Vec<String> {
        split_statements(self.sql)
    }

    /// `(major, minor)` from a `-- min_server_version: X.Y` line; core migrations have none.
    pub fn min_server_version(&self) -> Option<(u32, u32)> {
        self.sql.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("--")?.trim();
            let value = rest.strip_prefix("min_server_version:")?.trim();
            parse_version(value)
        })
    }

    pub fn applies_to(&self, server: (u32, u32)) -> bool {
        self.min_server_version().is_none_or(|min| server >= min)
    }
}

pub(crate) fn split_statements(sql: &str) -> Vec<String> {
    let body: Vec<&str> = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect();
    body.join("\n")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `"18.16.1"` -> `(18, 16)`.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct MigrationRecord {
    pub version: String,
    pub name: String,
    pub kind: String,
    pub server_version: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub applied_at: chrono::DateTime<Utc>,
}

/// What [`run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub server_version: String,
    pub applied: Vec<&'static str>,
    pub already_applied: Vec<&'static str>,
    /// Modern migrations this server is too old for.
    pub skipped: Vec<&'static str>,
}

/// Creates the database when missing and applies the pending migrations that this server supports.
/// `admin` has no default database; `client` uses the target database.
pub(crate) async fn run(
    admin: &clickhouse::Client,
    client: &clickhouse::Client,
    database: &str,
) -> Result<MigrationReport> {
    admin
        .query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .execute()
        .await
        .map_err(|e| AnalyticsError::clickhouse("create database", e))?;
    let server_version: String = client
        .query("SELECT version()")
        .fetch_one()
        .await
        .map_err(|e| AnalyticsError::clickhouse("server version", e))?;
    let server = parse_version(&server_version)
        .ok_or_else(|| AnalyticsError::ServerVersion(server_version.clone()))?;
    let mut report = MigrationReport {
        server_version: server_version.clone(),
        ..MigrationReport::default()
    };
    let mut applied_versions: Vec<String> = Vec::new();
    for migration in MIGRATIONS {
        if !migration.applies_to(server) {
            report.skipped.push(migration.version);
            continue;
        }
        let is_bookkeeping = migration.version == MIGRATIONS[0].version;
        if is_bookkeeping {
            // The bookkeeping table itself: idempotent DDL, then read what was applied before.
            apply(client, migration).await?;
            applied_versions = client
                .query("SELECT version FROM schema_migrations FINAL")
                .fetch_all()
                .await
                .map_err(|e| AnalyticsError::clickhouse("read schema_migrations", e))?;
        }
        if applied_versions.iter().any(|v| v == migration.version) {
            report.already_applied.push(migration.version);
            continue;
        }
        if !is_bookkeeping {
            apply(client, migration).await?;
        }
        record(client, migration, &server_version).await?;
        report.applied.push(migration.version);
    }
    Ok(report)
}

async fn apply(client: &clickhouse::Client, migration: &Migration) -> Result<()> {
    // No time limit for a migration: filling a new table from the raw events already stored (0007) reads them
    // all, and a statement cut at the sink's request timeout would fail the migration on every start.
    let client = client.clone().with_setting("max_execution_time", "0");
    for statement in migration.statements() {
        // `query_raw`: DDL is sent verbatim, no `?` placeholders.
        client
            .query_raw(&statement)
            .execute()
            .await
            .map_err(|source| AnalyticsError::Migration {
                version: migration.version.to_owned(),
                kind: migration.kind.as_str(),
                source,
            })?;
    }
    tracing::info!(
        version = migration.version,
        kind = migration.kind.as_str(),
        "migration applied"
    );
    Ok(())
}

async fn record(client: &clickhouse::Client, migration: &Migration, server_version: &str) -> Result<()> {
    let row = MigrationRecord {
        version: migration.version.to_owned(),
        name: migration
            .version
            .split_once('_')
            .map_or("", |(_, n)| n)
            .to_owned(),
        kind: migration.kind.as_str().to_owned(),
        server_version: server_version.to_owned(),
        applied_at: Utc::now(),
    };
    let mut insert = client
        .insert::<MigrationRecord>("schema_migrations")
        .await
        .map_err(|e| AnalyticsError::clickhouse("record migration", e))?;
    insert
        .write(&row)
        .await
        .map_err(|e| AnalyticsError::clickhouse("record migration", e))?;
    insert
        .end()
        .await
        .map_err(|e| AnalyticsError::clickhouse("record migration", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_events_ttl_constant_is_the_migrations() {
        let ttl = MIGRATIONS
            .iter()
            .find(|m| m.version == RAW_EVENTS_TTL_MIGRATION)
            .expect("the TTL migration");
        assert!(ttl.sql.contains(&format!("INTERVAL {RAW_EVENTS_TTL_DAYS} DAY")));
    }

    #[test]
    fn versions_are_ordered_and_unique() {
        let versions: Vec<_> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted);
    }

    #[test]
    fn modern_migrations_are_gated_and_core_are_not() {
        for m in MIGRATIONS {
            match m.kind {
                MigrationKind::Core => assert_eq!(m.min_server_version(), None, "{}", m.version),
                MigrationKind::Modern => {
                    assert!(m.min_server_version().is_some(), "{}", m.version);
                    assert!(!m.applies_to((18, 16)), "{}", m.version);
                    assert!(m.applies_to((26, 9)), "{}", m.version);
                }
            }
        }
    }

    #[test]
    fn embedded_list_matches_the_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/clickhouse");
        let mut on_disk = Vec::new();
        for dir in ["core", "modern"] {
            let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(stem) = name.strip_suffix(".sql") {
                    on_disk.push(stem.to_owned());
                }
            }
        }
        on_disk.sort();
        let embedded: Vec<String> = MIGRATIONS.iter().map(|m| m.version.to_owned()).collect();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn splits_statements_and_drops_comments() {
        let sql = "-- a; comment\nCREATE TABLE a (x UInt8) ENGINE = Log;\n\nCREATE VIEW b AS SELECT 1;\n";
        assert_eq!(
            split_statements(sql),
            vec![
                "CREATE TABLE a (x UInt8) ENGINE = Log",
                "CREATE VIEW b AS SELECT 1"
            ]
        );
    }

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("18.16.1"), Some((18, 16)));
        assert_eq!(parse_version("26.9.2.1"), Some((26, 9)));
        assert_eq!(parse_version("x"), None);
    }
}
