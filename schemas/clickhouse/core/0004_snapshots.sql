-- Leaderboard and trending snapshots written by the pipeline's operators. Keys are deterministic (board or window,
-- snapshot time, position), so a replayed snapshot replaces itself.
CREATE TABLE IF NOT EXISTS leaderboard_snapshots
(
    board_id String,
    snapshot_time DateTime('UTC'),
    position UInt32,
    user_id String,
    score Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(snapshot_time)
ORDER BY (board_id, snapshot_time, position);

CREATE TABLE IF NOT EXISTS trending_snapshots
(
    window_name String,
    snapshot_time DateTime('UTC'),
    rank UInt32,
    content_id String,
    score Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(snapshot_time)
ORDER BY (window_name, snapshot_time, rank);
