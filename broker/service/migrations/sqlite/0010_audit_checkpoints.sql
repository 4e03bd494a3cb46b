-- Signed checkpoints of the audit chain's head: the chain's own hashes show an edited or
-- removed event in the middle, these show events removed from its end (or all of them).
-- The signature is by the audit key, kept outside the database.
CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    at        BIGINT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL
);
