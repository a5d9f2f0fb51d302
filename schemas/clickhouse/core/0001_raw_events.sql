-- Every accepted input event, once per (source, id) after merges: ReplacingMergeTree over a deterministic key.
-- The sorting key starts with the event minute so that per-minute recomputations read only that minute; replays
-- carry the same event time, so duplicates share the key and the partition. Read with FINAL (or GROUP BY source, id).
CREATE TABLE IF NOT EXISTS raw_events
(
    source String,
    id String,
    type String,
    event_time DateTime('UTC'),
    event_time_ms Int64,
    ingest_time DateTime('UTC'),
    partition_key String,
    user_id String,
    program_id String,
    referral_id String,
    referrer_id String,
    content_id String,
    content_type String,
    platform String,
    engagement_type String,
    amount Float64,
    payload String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (toStartOfMinute(event_time), source, id);
