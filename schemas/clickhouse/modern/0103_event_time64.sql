-- min_server_version: 21.8
-- Millisecond event time as DateTime64, computed from event_time_ms (the sink keeps writing Int64).
ALTER TABLE raw_events
    ADD COLUMN IF NOT EXISTS event_time64 DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(event_time_ms, 'UTC');
