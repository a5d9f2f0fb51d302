-- Per-minute aggregates. Each row holds ABSOLUTE values for its (minute, dimension), recomputed by the sink from the
-- deduplicated raw events; the row with the highest `version` wins. Read with FINAL. See README.md.
CREATE TABLE IF NOT EXISTS referral_funnel_1m
(
    minute DateTime('UTC'),
    program_id String,
    clicks UInt64,
    conversions_started UInt64,
    conversions_completed UInt64,
    rewards UInt64,
    reward_amount Decimal(18, 4),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, program_id);

CREATE TABLE IF NOT EXISTS engagement_1m
(
    minute DateTime('UTC'),
    content_id String,
    engagement_type String,
    engagements UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, content_id, engagement_type);

CREATE TABLE IF NOT EXISTS shares_1m
(
    minute DateTime('UTC'),
    platform String,
    content_type String,
    shares UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, platform, content_type);
