-- Events: every instance, command and deployment status change, service error and scaling event,
-- in the order they happened. `seq` never repeats (AUTOINCREMENT), even after old rows are pruned,
-- so a client resuming from the last seq it saw misses nothing that is still kept.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TEXT NOT NULL,
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
