-- The PostgreSQL schema: the same tables as the SQLite engine's migrations 0001-0005 end with,
-- plus what several servers on one database need (a counter per kind for their caches).

-- Resources as the JSON text the API describes them with (text, not jsonb: stored documents are
-- passed on byte for byte), keyed by kind and ID, with the columns lists filter on broken out.
-- `seq` is the insertion order listings follow; an upsert keeps it.
CREATE TABLE resources (
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    seq         BIGSERIAL NOT NULL,
    stack_id    TEXT,
    parent_id   TEXT,
    instance_id TEXT,
    doc         TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX resources_in_order ON resources (kind, seq);
CREATE INDEX resources_by_stack ON resources (kind, stack_id, seq);
CREATE INDEX resources_by_parent ON resources (kind, parent_id, seq);
CREATE INDEX resources_by_instance ON resources (kind, instance_id, seq);

-- Raised by every committed transaction that wrote a kind: each server's cache compares it with
-- the value its entries were read under.
CREATE TABLE generations (
    kind TEXT PRIMARY KEY,
    gen  BIGINT NOT NULL
);

-- Access keys; the secret is sealed (AES-256-GCM) under the master key before it gets here.
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    seq           BIGSERIAL NOT NULL,
    sealed_secret BYTEA NOT NULL,
    principal     TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX access_keys_by_principal ON access_keys (principal);

-- Server-wide settings that must survive restarts (the account ID, the metrics watermarks, ...).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Events in the order they happened. Every append runs under the write lock, so `seq` order is
-- commit order; a sequence never hands a number out twice, even after old rows are pruned.
-- `at` is an AWS timestamp in one UTC form: compared byte by byte (collation "C"), text order
-- is time order.
CREATE TABLE events (
    seq           BIGSERIAL PRIMARY KEY,
    at            TEXT COLLATE "C" NOT NULL,
    stack_id      TEXT NOT NULL,
    type          TEXT NOT NULL,
    instance_id   TEXT,
    layer_id      TEXT,
    deployment_id TEXT,
    command_id    TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX events_by_stack ON events (stack_id, seq);
CREATE INDEX events_by_time ON events (at);

-- Instance metrics: a small series number per instance, and per sample 16 little-endian f32
-- packed in 64 bytes (the order of opsworks_protocol::METRIC_NAMES). `at` is Unix seconds.
CREATE TABLE metric_series (
    id          BIGSERIAL PRIMARY KEY,
    instance_id TEXT NOT NULL UNIQUE
);

-- Raw samples. Rows arrive in time order, so a BRIN index on `at` (a few pages) serves the
-- rollup pass and pruning, which read across all series by time.
CREATE TABLE metric_samples (
    series BIGINT NOT NULL,
    at     BIGINT NOT NULL,
    vals   BYTEA NOT NULL,
    PRIMARY KEY (series, at)
);
CREATE INDEX metric_samples_by_time ON metric_samples USING brin (at);

-- Averages over 5-minute buckets (`at` is the bucket's start), `n` samples each.
CREATE TABLE metric_rollups (
    series BIGINT NOT NULL,
    at     BIGINT NOT NULL,
    n      BIGINT NOT NULL,
    vals   BYTEA NOT NULL,
    PRIMARY KEY (series, at)
);
CREATE INDEX metric_rollups_by_time ON metric_rollups USING brin (at);
