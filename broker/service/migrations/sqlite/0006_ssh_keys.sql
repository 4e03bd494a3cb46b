-- Tenants' OpenSSH public keys, by the tenant's name for each.
-- Kept in step with ../postgres/0006_ssh_keys.sql.
CREATE TABLE ssh_keys (
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    algorithm   TEXT NOT NULL,               -- ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, ...
    public_key  TEXT NOT NULL,               -- the OpenSSH line as validated
    fingerprint TEXT NOT NULL,               -- SHA256:... as ssh-keygen -l prints it
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
