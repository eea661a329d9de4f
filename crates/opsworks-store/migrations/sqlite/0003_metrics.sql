-- Instance metrics (the agent's 16 values per sample), packed compactly: each instance's series
-- gets a small integer ID, and a sample is one row of (series, time, 64-byte blob of 16
-- little-endian f32 in the order of opsworks_protocol::METRIC_NAMES).
CREATE TABLE metric_series (
    id          INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL UNIQUE
);

-- Raw samples, kept for the raw retention (a day by default). `at` is Unix seconds. No index
-- on time alone: pruning and rollups go series by series along the primary key.
CREATE TABLE metric_samples (
    series INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    vals   BLOB NOT NULL,
    PRIMARY KEY (series, at)
) WITHOUT ROWID;

-- Averages over 5-minute buckets (`at` is the bucket's start), `n` samples each, kept for the
-- rollup retention (two weeks by default).
CREATE TABLE metric_rollups (
    series INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    vals   BLOB NOT NULL,
    PRIMARY KEY (series, at)
) WITHOUT ROWID;
