-- min_server_version: 21.8
-- Retention of the per-flush delta tables: 400 days.
ALTER TABLE dead_letters MODIFY TTL minute + INTERVAL 400 DAY;

ALTER TABLE delivery_latency MODIFY TTL minute + INTERVAL 400 DAY;
