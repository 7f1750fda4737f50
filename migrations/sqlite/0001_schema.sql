-- Instants are INTEGER microseconds since the Unix epoch (UTC): one
-- fixed-width form, so uniqueness and ordering are exact. JSON is TEXT.
CREATE TABLE jobs (
    id                         TEXT PRIMARY KEY,
    name                       TEXT,
    trigger                    TEXT NOT NULL,
    target                     TEXT NOT NULL,
    retry                      TEXT NOT NULL,
    metadata                   TEXT NOT NULL,
    misfire_grace_s            INTEGER,
    coalesce_runs              INTEGER NOT NULL,
    max_instances              INTEGER NOT NULL,
    state                      TEXT NOT NULL CHECK (state IN ('scheduled', 'paused', 'completed')),
    next_run_at                INTEGER,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at INTEGER,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL,
    CHECK ((state = 'scheduled') = (next_run_at IS NOT NULL))
) STRICT;

CREATE INDEX jobs_due ON jobs (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX jobs_by_state ON jobs (state, id);

CREATE TABLE runs (
    id                 TEXT PRIMARY KEY,
    job_id             TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
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
    finished_at        INTEGER
) STRICT;

CREATE UNIQUE INDEX runs_one_per_occurrence ON runs (job_id, scheduled_for) WHERE cause = 'schedule';
CREATE INDEX runs_history ON runs (job_id, created_at DESC, id DESC);
CREATE INDEX runs_in_flight ON runs (job_id) WHERE status IN ('pending', 'running');
CREATE INDEX runs_pending ON runs (next_attempt_at) WHERE status = 'pending';
CREATE INDEX runs_leased ON runs (lease_until) WHERE status = 'running';
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE attempts (
    run_id           TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (run_id, number)
) STRICT;
