-- The broker's books. Kept in step with ../postgres/0001_init.sql: same tables, same
-- columns, same meaning; only the dialect differs. Times are milliseconds since the epoch.

CREATE TABLE tenants (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    home_jurisdiction     TEXT NOT NULL,
    allowed_jurisdictions TEXT NOT NULL,  -- JSON array of codes
    default_data_class    TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

CREATE TABLE members (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,             -- active | suspended | draining | retired
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE resources (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    resource_type      TEXT NOT NULL,       -- instance | volume | bucket
    name               TEXT NOT NULL,
    jurisdiction       TEXT NOT NULL,
    member_id          TEXT NOT NULL,
    status             TEXT NOT NULL,       -- provisioning | active | deleting | deleted | failed
    data_class         TEXT NOT NULL,
    spec               TEXT NOT NULL,       -- JSON: size, image, size_gb
    member_resource_id TEXT,
    placement          TEXT NOT NULL,       -- JSON: {"reasons": [...]}
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX resources_by_tenant ON resources (tenant_id, resource_type, id);
CREATE INDEX resources_by_member ON resources (member_id, status);

CREATE TABLE operations (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    resource_type   TEXT NOT NULL,
    kind            TEXT NOT NULL,          -- create | delete
    status          TEXT NOT NULL,          -- pending | running | succeeded | failed
    step            TEXT NOT NULL,          -- submit | await | done
    attempts        INTEGER NOT NULL DEFAULT 0,
    error           TEXT,                   -- JSON problem when failed
    last_error      TEXT,                   -- the latest transient failure, for operators
    lease_owner     TEXT,
    lease_until     INTEGER,
    next_attempt_at INTEGER NOT NULL,
    deadline_at     INTEGER NOT NULL,
    traceparent     TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX operations_due ON operations (status, next_attempt_at);
CREATE INDEX operations_by_tenant ON operations (tenant_id, id);

CREATE TABLE idempotency_keys (
    tenant_id         TEXT NOT NULL,
    subject           TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    state             TEXT NOT NULL,         -- in_flight | done
    locked_until      INTEGER NOT NULL,
    response_status   INTEGER,
    response_location TEXT,
    response_body     TEXT,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, subject, idempotency_key)
);
CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    roles       TEXT NOT NULL,               -- JSON array
    tenant_id   TEXT,
    action      TEXT NOT NULL,
    resource_id TEXT,
    outcome     TEXT NOT NULL,
    request_id  TEXT,
    details     TEXT NOT NULL,               -- JSON object
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_by_tenant ON audit_events (tenant_id, seq);
CREATE INDEX audit_by_resource ON audit_events (resource_id, seq);
