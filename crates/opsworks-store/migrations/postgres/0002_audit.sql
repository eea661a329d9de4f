-- The audit log: every mutating call (API and console), who made it, from where, on what and how
-- it ended. `at` compares byte by byte (collation "C"), so text order is time order.
CREATE TABLE audit (
    seq        BIGSERIAL PRIMARY KEY,
    at         TEXT COLLATE "C" NOT NULL,
    principal  TEXT NOT NULL,
    source_ip  TEXT,
    service    TEXT NOT NULL,
    operation  TEXT NOT NULL,
    stack_id   TEXT,
    target     TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_principal ON audit (principal, seq);
CREATE INDEX audit_by_stack ON audit (stack_id, seq);
