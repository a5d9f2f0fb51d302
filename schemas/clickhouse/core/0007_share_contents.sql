-- Share -> content, filled from raw events by a materialized view (and, once, from the raw events already stored).
-- An engagement may name only its share (shareId); the per-minute engagement aggregate counts it for the share's
-- content through this table. The share id is read from the canonical payload (compact JSON: visitParam functions
-- apply), as raw_events has no column of its own for it. The sorting key keeps every distinct creation of a share
-- (a replay's copies collapse): readers take the latest content and the earliest time, as the live state does.
CREATE TABLE IF NOT EXISTS share_contents
(
    share_id String,
    content_id String,
    created_time DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (share_id, created_time, content_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS share_contents_mv TO share_contents AS
SELECT visitParamExtractString(payload, 'shareId') AS share_id, content_id, event_time AS created_time
FROM raw_events
WHERE type = 'social.share.created';

INSERT INTO share_contents
SELECT visitParamExtractString(payload, 'shareId') AS share_id, content_id, event_time AS created_time
FROM raw_events
WHERE type = 'social.share.created';
