-- Referral code -> program, filled from raw events by a materialized view. Clicks and conversion starts carry only
-- the code (referralId); the per-minute funnel attributes them to a program through this table.
CREATE TABLE IF NOT EXISTS referral_codes
(
    code_id String,
    program_id String,
    user_id String,
    created_time DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY code_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS referral_codes_mv TO referral_codes AS
SELECT referral_id AS code_id, program_id, user_id, event_time AS created_time
FROM raw_events
WHERE type = 'referral.code.generated';
