-- The most runs one catch-up of a tenant's jobs makes (a job's own
-- catchup_max above it is capped to it when scheduling); null: 1,000.
ALTER TABLE tenant_quotas ADD COLUMN catchup_max INTEGER;
