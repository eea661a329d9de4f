-- The audit log: every mutating call (API and console), who made it, from where, on what and how
-- it ended. `seq` never repeats (AUTOINCREMENT), even after old rows are pruned.
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
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
