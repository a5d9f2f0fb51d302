-- Referral code -> program, one row per distinct generation of a code: `referral_codes` keeps one row per code
-- after merges (whichever was inserted last), so a code generated twice would give the funnel a program that
-- depends on insertion order. The funnel reads this table (latest program, earliest time, as the live state);
-- `referral_codes` stays as it was for other readers. Filled by a materialized view, and once from the raw events
-- already stored.
CREATE TABLE IF NOT EXISTS referral_code_creations
(
    code_id String,
    program_id String,
    user_id String,
    created_time DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (code_id, created_time, program_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS referral_code_creations_mv TO referral_code_creations AS
SELECT referral_id AS code_id, program_id, user_id, event_time AS created_time
FROM raw_events
WHERE type = 'referral.code.generated';

INSERT INTO referral_code_creations
SELECT referral_id AS code_id, program_id, user_id, event_time AS created_time
FROM raw_events
WHERE type = 'referral.code.generated';
