-- DESIGN.md §11.1, overlap `replace`: the oldest run in flight is
-- cancelled (its request aborted) and the new run goes. SQLite cannot
-- change a CHECK in place: jobs, runs and attempts are rebuilt as in 0005
-- (children dropped before parents, which would cascade), with the same
-- columns in the same order, and their indexes made again.
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
    pause_on_failure           INTEGER NOT NULL DEFAULT 0,
    overlap                    TEXT NOT NULL DEFAULT 'skip'
        CHECK (overlap IN ('skip', 'buffer_one', 'buffer_all', 'replace')),
    buffer_max                 INTEGER,
    max_runs                   INTEGER CHECK (max_runs >= 1),
    runs_counted               INTEGER NOT NULL DEFAULT 0,
    on_complete                TEXT NOT NULL DEFAULT 'keep'
        CHECK (on_complete IN ('keep', 'delete')),
    PRIMARY KEY (tenant, id),
    CHECK ((state = 'scheduled') = (next_run_at IS NOT NULL))
) STRICT;
INSERT INTO jobs_new SELECT * FROM jobs;

CREATE TABLE runs_new (
    id                 TEXT PRIMARY KEY,
    tenant             TEXT NOT NULL,
    job_id             TEXT,
    subscription_id    TEXT,
    event_id           TEXT,
    scheduled_for      INTEGER NOT NULL,
    cause              TEXT NOT NULL CHECK (cause IN ('schedule', 'manual', 'event')),
    status             TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed',
                                                      'missed', 'skipped', 'cancelled')),
    occurrences        INTEGER NOT NULL,
    attempt_count      INTEGER NOT NULL DEFAULT 0,
    prior_attempts     INTEGER NOT NULL DEFAULT 0,
    deliver_after      INTEGER NOT NULL,
    next_attempt_at    INTEGER,
    lease_owner        TEXT,
    lease_until        INTEGER,
    attempt_started_at INTEGER,
    created_at         INTEGER NOT NULL,
    finished_at        INTEGER,
    host               TEXT,
    wait_reason        TEXT,
    reason             TEXT,
    FOREIGN KEY (tenant, job_id) REFERENCES jobs_new (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, subscription_id) REFERENCES subscriptions (tenant, id) ON DELETE CASCADE,
    CHECK ((job_id IS NULL) <> (subscription_id IS NULL))
) STRICT;
INSERT INTO runs_new SELECT * FROM runs;

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
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX runs_recent ON runs (tenant, created_at DESC, id DESC);
CREATE INDEX runs_failed ON runs (tenant, created_at DESC, id DESC) WHERE status = 'failed';
CREATE INDEX runs_deliveries ON runs (tenant, subscription_id, created_at DESC, id DESC)
    WHERE subscription_id IS NOT NULL;
CREATE INDEX runs_waiting ON runs (tenant, job_id, scheduled_for, id)
    WHERE wait_reason IS NOT NULL;
