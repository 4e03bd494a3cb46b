-- Live resources found outside their tenant's policy (a member lost a certification their
-- data class needs), with the reasons last recorded in the audit log: a change of facts is
-- audited once, not at every start.
CREATE TABLE resource_compliance (
    resource_id TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    reasons     TEXT NOT NULL,
    since       BIGINT NOT NULL
);
