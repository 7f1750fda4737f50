-- Tenants (DESIGN.md §8): every job and run belongs to one, and ids are
-- unique per tenant. What exists belongs to `default`.
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ALTER COLUMN tenant DROP DEFAULT;
ALTER TABLE runs ALTER COLUMN tenant DROP DEFAULT;

ALTER TABLE runs DROP CONSTRAINT runs_job_id_fkey;
ALTER TABLE jobs DROP CONSTRAINT jobs_pkey;
ALTER TABLE jobs ADD PRIMARY KEY (tenant, id);
ALTER TABLE runs ADD CONSTRAINT runs_job_fkey
    FOREIGN KEY (tenant, job_id) REFERENCES jobs (tenant, id) ON DELETE CASCADE;

DROP INDEX runs_one_per_occurrence;
CREATE UNIQUE INDEX runs_one_per_occurrence ON runs (tenant, job_id, scheduled_for)
    WHERE cause = 'schedule';
DROP INDEX runs_history;
CREATE INDEX runs_history ON runs (tenant, job_id, created_at DESC, id DESC);
DROP INDEX runs_in_flight;
CREATE INDEX runs_in_flight ON runs (tenant, job_id) WHERE status IN ('pending', 'running');
DROP INDEX runs_recent;
CREATE INDEX runs_recent ON runs (tenant, created_at DESC, id DESC);
DROP INDEX runs_failed;
CREATE INDEX runs_failed ON runs (tenant, created_at DESC, id DESC) WHERE status = 'failed';
DROP INDEX jobs_by_state;
CREATE INDEX jobs_by_state ON jobs (tenant, state, id);

ALTER TABLE idempotency_keys ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE idempotency_keys ALTER COLUMN tenant DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant, scope, key);

-- With coalescing off, at most this many due occurrences become runs at
-- one claim; older ones become one missed run.
ALTER TABLE jobs ADD COLUMN catchup_max BIGINT NOT NULL DEFAULT 100;

-- A target's secrets (sensitive header values, a URL's password), sealed
-- with the service's key; the URL and headers columns keep the rest. The
-- service seals what was stored before at its first start with a key.
ALTER TABLE jobs ADD COLUMN target_secrets TEXT;

-- API tokens: only a SHA-256 of each is kept.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT,
    tenant       TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('root', 'write', 'read')),
    hash         TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- The service's own settings: the sealing key's fingerprint.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
