-- min_server_version: 21.8
-- Retention: raw events are kept 90 days (table TTL, ClickHouse 19.6+). Aggregates and snapshots are kept.
ALTER TABLE raw_events MODIFY TTL event_time + INTERVAL 90 DAY;
