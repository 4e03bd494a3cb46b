-- What makes resources usable. Kept in step with ../postgres/0007_usable_resources.sql.
-- settings: JSON, what the tenant asked for besides the shape (an instance's SSH key, user
--           data, ingress rules and public address; a volume's instance to attach to).
-- observed: JSON, what the member last reported (addresses, power state, attachment
--           device, a bucket's endpoint).
-- attached_to: a volume's instance (broker id) while it is attached.
ALTER TABLE resources ADD COLUMN settings TEXT;
ALTER TABLE resources ADD COLUMN observed TEXT;
ALTER TABLE resources ADD COLUMN attached_to TEXT;
CREATE INDEX resources_by_attachment ON resources (attached_to);

-- An action's arguments (a resize's size, an attachment's instance), JSON.
ALTER TABLE operations ADD COLUMN params TEXT;

-- The usage ledger's changes within a span: a resize ends the running SKU and starts the
-- next one at `at`, in the transaction that commits the resize (once per operation).
CREATE TABLE usage_changes (
    operation_id TEXT PRIMARY KEY,
    resource_id  TEXT NOT NULL,
    at           INTEGER NOT NULL,
    spec         TEXT NOT NULL               -- JSON: the shape from then on
);
CREATE INDEX usage_changes_by_resource ON usage_changes (resource_id, at);
