-- Uploaded member statements and reconciliation reports.
-- Kept in step with ../sqlite/0005_reconciliation.sql.
CREATE TABLE statements (
    member_id   TEXT NOT NULL,
    period      TEXT NOT NULL,
    body        TEXT NOT NULL,               -- FOCUS CSV as uploaded (validated)
    uploaded_by TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, period)
);
CREATE TABLE reconciliations (
    id          TEXT PRIMARY KEY,
    member_id   TEXT NOT NULL,
    period      TEXT NOT NULL,
    status      TEXT NOT NULL,
    report      TEXT NOT NULL,               -- JSON
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
