-- The latest drift report per member. Kept in step with ../postgres/0003_drift.sql.
CREATE TABLE drift_reports (
    member_id   TEXT PRIMARY KEY,
    checked_at  INTEGER NOT NULL,
    report      TEXT NOT NULL              -- JSON
);
