-- Which migrations were applied, and when. Created before any other migration; never altered.
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version String,
    name String,
    kind String,
    server_version String,
    applied_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version;
