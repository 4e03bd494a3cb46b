-- A tenant's billing currency (ISO 4217): what its invoices are in; EUR for existing tenants.
ALTER TABLE tenants ADD COLUMN billing_currency TEXT NOT NULL DEFAULT 'EUR';
