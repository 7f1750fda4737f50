-- Tenants (DESIGN.md §8): every job and run belongs to one, and ids are
-- unique per tenant. What exists belongs to `default`. SQLite cannot change
-- a primary key in place, so jobs, runs and attempts are rebuilt: new
-- tables, the rows copied, children dropped before parents (a dropped
-- parent would cascade), the new tables renamed (which carries the foreign
-- keys' names along).
CREATE TABLE jobs_new (
    tenant                     TEXT NOT NULL,
    id                         TEXT NOT NULL,
    name                       TEXT,
    trigger_type               TEXT NOT NULL CHECK (trigger_type IN ('cron', 'interval', 'date')),
    cron_expr                  TEXT,
    cron_timezone              TEXT,
    every_s                    INTEGER,
    run_at                     INTEGER,
    start_at                   INTEGER,
    end_at                     INTEGER,
    jitter_s                   INTEGER NOT NULL,
    target_url                 TEXT NOT NULL,
    target_method              TEXT NOT NULL,
    target_headers             TEXT NOT NULL,
    target_body                TEXT,
    -- Sensitive header values and a URL's password, sealed.
    target_secrets             TEXT,
    timeout_s                  INTEGER NOT NULL,
    metadata                   TEXT NOT NULL,
    misfire_grace_s            INTEGER,
    coalesce_runs              INTEGER NOT NULL,
    catchup_max                INTEGER NOT NULL,
    max_instances              INTEGER NOT NULL,
    max_attempts               INTEGER NOT NULL,
    backoff_initial_s          INTEGER NOT NULL,
    backoff_max_s              INTEGER NOT NULL,
    state                      TEXT NOT NULL CHECK (state IN ('scheduled', 'paused', 'completed')),
    next_run_at                INTEGER,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at INTEGER,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    CHECK ((state = 'scheduled') = (next_run_at IS NOT NULL))
) STRICT;

INSERT INTO jobs_new (tenant, id, name, trigger_type, cron_expr, cron_timezone, every_s, run_at,
    start_at, end_at, jitter_s, target_url, target_method, target_headers, target_body,
    target_secrets, timeout_s, metadata, misfire_grace_s, coalesce_runs, catchup_max,
    max_instances, max_attempts, backoff_initial_s, backoff_max_s, state, next_run_at, secret,
    previous_secret, previous_secret_expires_at, created_at, updated_at)
SELECT 'default', id, name, trigger_type, cron_expr, cron_timezone, every_s, run_at,
    start_at, end_at, jitter_s, target_url, target_method, target_headers, target_body,
    NULL, timeout_s, metadata, misfire_grace_s, coalesce_runs, 100,
    max_instances, max_attempts, backoff_initial_s, backoff_max_s, state, next_run_at, secret,
    previous_secret, previous_secret_expires_at, created_at, updated_at
FROM jobs;

CREATE TABLE runs_new (
    id                 TEXT PRIMARY KEY,
    tenant             TEXT NOT NULL,
    job_id             TEXT NOT NULL,
    scheduled_for      INTEGER NOT NULL,
    cause              TEXT NOT NULL CHECK (cause IN ('schedule', 'manual')),
    status             TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'missed', 'skipped')),
    occurrences        INTEGER NOT NULL,
    attempt_count      INTEGER NOT NULL DEFAULT 0,
    deliver_after      INTEGER NOT NULL,
    next_attempt_at    INTEGER,
    lease_owner        TEXT,
    lease_until        INTEGER,
    attempt_started_at INTEGER,
    created_at         INTEGER NOT NULL,
    finished_at        INTEGER,
    FOREIGN KEY (tenant, job_id) REFERENCES jobs_new (tenant, id) ON DELETE CASCADE
) STRICT;

INSERT INTO runs_new (id, tenant, job_id, scheduled_for, cause, status, occurrences,
    attempt_count, deliver_after, next_attempt_at, lease_owner, lease_until, attempt_started_at,
    created_at, finished_at)
SELECT id, 'default', job_id, scheduled_for, cause, status, occurrences, attempt_count,
    deliver_after, next_attempt_at, lease_owner, lease_until, attempt_started_at, created_at,
    finished_at
FROM runs;

CREATE TABLE attempts_new (
    run_id           TEXT NOT NULL REFERENCES runs_new (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (run_id, number)
) STRICT;

INSERT INTO attempts_new SELECT * FROM attempts;

DROP TABLE attempts;
DROP TABLE runs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
ALTER TABLE runs_new RENAME TO runs;
ALTER TABLE attempts_new RENAME TO attempts;

CREATE INDEX jobs_due ON jobs (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX jobs_by_state ON jobs (tenant, state, id);
CREATE UNIQUE INDEX runs_one_per_occurrence ON runs (tenant, job_id, scheduled_for)
    WHERE cause = 'schedule';
CREATE INDEX runs_history ON runs (tenant, job_id, created_at DESC, id DESC);
CREATE INDEX runs_in_flight ON runs (tenant, job_id) WHERE status IN ('pending', 'running');
CREATE INDEX runs_pending ON runs (next_attempt_at) WHERE status = 'pending';
CREATE INDEX runs_leased ON runs (lease_until) WHERE status = 'running';
CREATE INDEX runs_lease_owner ON runs (lease_owner) WHERE status = 'running';
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX runs_recent ON runs (tenant, created_at DESC, id DESC);
CREATE INDEX runs_failed ON runs (tenant, created_at DESC, id DESC) WHERE status = 'failed';

CREATE TABLE idempotency_keys_new (
    tenant      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, scope, key)
) STRICT;
INSERT INTO idempotency_keys_new SELECT 'default', scope, key, fingerprint, resource_id, created_at
FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_new RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- API tokens: only a SHA-256 of each is kept.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT,
    tenant       TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('root', 'write', 'read')),
    hash         TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

-- The service's own settings: the sealing key's fingerprint.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
