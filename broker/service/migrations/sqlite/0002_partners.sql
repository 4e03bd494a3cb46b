-- Members that joined through a partner application, and the applications themselves.
-- Kept in step with ../postgres/0002_partners.sql.

ALTER TABLE members ADD COLUMN source TEXT NOT NULL DEFAULT 'config';   -- config | application
ALTER TABLE members ADD COLUMN definition TEXT;                         -- JSON MemberDefinition
ALTER TABLE members ADD COLUMN credentials TEXT;                        -- sealed (AES-256-GCM), base64

CREATE TABLE partner_applications (
    id               TEXT PRIMARY KEY,
    member_id        TEXT NOT NULL,
    submitted_by     TEXT NOT NULL,
    status           TEXT NOT NULL,   -- conformance_running | conformance_failed | awaiting_approval | approved | rejected
    description      TEXT NOT NULL,   -- JSON self-description, credentials removed
    credentials      TEXT,            -- sealed (AES-256-GCM), base64
    conformance      TEXT,            -- JSON report
    decided_by       TEXT,
    reason           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX partner_applications_by_member ON partner_applications (member_id);
