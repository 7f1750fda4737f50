-- Jobs: the definition as validated JSON, the policy columns the scheduler
-- reads, and the schedule (state + next_run_at, set together).
CREATE TABLE jobs (
    id                         TEXT PRIMARY KEY,
    name                       TEXT,
    trigger                    JSONB NOT NULL,
    target                     JSONB NOT NULL,
    retry                      JSONB NOT NULL,
    metadata                   JSONB NOT NULL,
    misfire_grace_s            BIGINT,
    coalesce_runs              BOOLEAN NOT NULL,
    max_instances              INTEGER NOT NULL,
    state                      TEXT NOT NULL CHECK (state IN ('scheduled', 'paused', 'completed')),
    next_run_at                TIMESTAMPTZ,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL,
    CHECK ((state = 'scheduled') = (next_run_at IS NOT NULL))
);

-- The due-job claim: only scheduled jobs have a next_run_at, so the
-- partial index holds exactly the claimable ones.
CREATE INDEX jobs_due ON jobs (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX jobs_by_state ON jobs (state, id);

CREATE TABLE runs (
    id                 UUID PRIMARY KEY,
    job_id             TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    scheduled_for      TIMESTAMPTZ NOT NULL,
    cause              TEXT NOT NULL CHECK (cause IN ('schedule', 'manual')),
    status             TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'missed', 'skipped')),
    occurrences        BIGINT NOT NULL,
    attempt_count      INTEGER NOT NULL DEFAULT 0,
    deliver_after      TIMESTAMPTZ NOT NULL,
    -- pending: when the next attempt may start; null otherwise.
    next_attempt_at    TIMESTAMPTZ,
    lease_owner        TEXT,
    lease_until        TIMESTAMPTZ,
    attempt_started_at TIMESTAMPTZ,
    -- The clock at insert time, not the transaction's start: lateness.
    created_at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    finished_at        TIMESTAMPTZ
);

-- One run per occurrence, whatever the number of instances.
CREATE UNIQUE INDEX runs_one_per_occurrence ON runs (job_id, scheduled_for) WHERE cause = 'schedule';
CREATE INDEX runs_history ON runs (job_id, created_at DESC, id DESC);
CREATE INDEX runs_in_flight ON runs (job_id) WHERE status IN ('pending', 'running');
CREATE INDEX runs_pending ON runs (next_attempt_at) WHERE status = 'pending';
CREATE INDEX runs_leased ON runs (lease_until) WHERE status = 'running';
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE attempts (
    run_id           UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (run_id, number)
);
