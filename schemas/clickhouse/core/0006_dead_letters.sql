-- Rejected input per minute and validation code, as deltas keyed like delivery_latency (sum over FINAL).
CREATE TABLE IF NOT EXISTS dead_letters
(
    minute DateTime('UTC'),
    reason String,
    count UInt64,
    writer_id String,
    seq UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, reason, writer_id, seq);
