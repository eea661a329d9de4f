-- Resources are stored as the JSON documents the API describes them with, keyed by kind and ID,
-- with the columns the API filters on (stack, parent) broken out and indexed.
CREATE TABLE resources (
    kind      TEXT NOT NULL,
    id        TEXT NOT NULL,
    stack_id  TEXT,
    parent_id TEXT,
    doc       TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX resources_by_stack ON resources (kind, stack_id);
CREATE INDEX resources_by_parent ON resources (kind, parent_id);

-- Access keys; the secret is sealed (AES-256-GCM) under the data dir's master key.
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    sealed_secret BLOB NOT NULL,
    principal     TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- Server-wide settings that must survive restarts (the account ID, ...).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
