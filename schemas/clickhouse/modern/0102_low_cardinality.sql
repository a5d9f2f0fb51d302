-- min_server_version: 21.8
-- Dictionary-encoded columns for the small vocabularies (LowCardinality without the experimental setting).
-- RowBinary writes them as plain String, so the sink's row structs do not change.
ALTER TABLE raw_events
    MODIFY COLUMN type LowCardinality(String),
    MODIFY COLUMN content_type LowCardinality(String),
    MODIFY COLUMN platform LowCardinality(String),
    MODIFY COLUMN engagement_type LowCardinality(String);

ALTER TABLE engagement_1m MODIFY COLUMN engagement_type LowCardinality(String);

ALTER TABLE dead_letters MODIFY COLUMN reason LowCardinality(String);
