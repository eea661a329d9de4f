-- What several servers on one database share beyond resources, keys and events. Times here are
-- the database's clock (now()), so servers whose clocks disagree agree on leases and silence.

-- Every running server, by the stable ID kept in its data dir: where clients and agents reach it.
-- A server refreshes `seen_at` every few seconds and removes its row when it stops.
CREATE TABLE servers (
    server_id     TEXT PRIMARY KEY,
    advertise_url TEXT NOT NULL,
    agent_url     TEXT NOT NULL,
    seen_at       TIMESTAMPTZ NOT NULL
);

-- Leases on work only one server does at a time (the background workers): held until
-- `expires_at`, renewed by the holder, taken by another server once expired.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- When each instance's agent was last heard from, through which server: written in batches,
-- outside the write lock, read by the watchdog of whichever server leads.
CREATE TABLE agent_presence (
    instance_id TEXT PRIMARY KEY,
    server_id   TEXT NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL
);

-- Command logs, as the pieces agents send them (`at` = byte offset of the piece in the log), so
-- every server serves every log and an agent that moves to another server mid-command goes on
-- at the same offset. Bytes, not text: a log may hold NUL, which text refuses.
CREATE TABLE command_logs (
    command_id TEXT NOT NULL,
    at         BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    PRIMARY KEY (command_id, at)
);
