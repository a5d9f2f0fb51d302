-- Delivery latency as per-minute histogram deltas: `count` deliveries with latency <= `le_ms` and above the previous
-- bucket bound (4294967295 is +Inf). Each flush of a writer is one (writer_id, seq); a retried flush repeats its key,
-- so reading with FINAL and summing counts is exact.
CREATE TABLE IF NOT EXISTS delivery_latency
(
    minute DateTime('UTC'),
    node String,
    topic_class String,
    le_ms UInt32,
    count UInt64,
    writer_id String,
    seq UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, node, topic_class, le_ms, writer_id, seq);
