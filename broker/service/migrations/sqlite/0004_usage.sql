-- The usage ledger: one `start` when a resource becomes active and one `stop` when it is
-- deleted, written in the same transaction as that state change (unique per resource and
-- event, so never twice). Kept in step with ../postgres/0004_usage.sql.
CREATE TABLE usage_events (
    resource_id   TEXT NOT NULL,
    event         TEXT NOT NULL,              -- start | stop
    at            INTEGER NOT NULL,
    tenant_id     TEXT NOT NULL,
    member_id     TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    jurisdiction  TEXT NOT NULL,
    name          TEXT NOT NULL,
    spec          TEXT NOT NULL,              -- JSON: size, size_gb
    PRIMARY KEY (resource_id, event)
);
CREATE INDEX usage_by_time ON usage_events (at);
