-- Events (DESIGN.md §9), written in the same transaction as the change
-- they describe. SQLite has one writer at a time, so `seq` is commit
-- order: resuming after an event loses and repeats nothing.
CREATE TABLE events (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    id     TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    type   TEXT NOT NULL,
    at     INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    run_id TEXT,
    data   TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_position ON events (tenant, seq);

-- Subscriptions deliver events as signed webhooks.
CREATE TABLE subscriptions (
    tenant         TEXT NOT NULL,
    id             TEXT NOT NULL,
    target_url     TEXT NOT NULL,
    target_secrets TEXT,
    types          TEXT NOT NULL,
    job_id         TEXT,
    secret         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;

-- A subscription's delivery of an event is a run of the same dispatcher:
-- no job, its subscription and event instead. SQLite cannot drop NOT NULL
-- in place: runs and attempts are rebuilt, as in 0005.
CREATE TABLE runs_new (
    id                 TEXT PRIMARY KEY,
    tenant             TEXT NOT NULL,
    job_id             TEXT,
    subscription_id    TEXT,
    event_id           TEXT,
    scheduled_for      INTEGER NOT NULL,
    cause              TEXT NOT NULL CHECK (cause IN ('schedule', 'manual', 'event')),
    status             TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'missed', 'skipped')),
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
    FOREIGN KEY (tenant, job_id) REFERENCES jobs (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, subscription_id) REFERENCES subscriptions (tenant, id) ON DELETE CASCADE,
    CHECK ((job_id IS NULL) <> (subscription_id IS NULL))
) STRICT;

INSERT INTO runs_new (id, tenant, job_id, scheduled_for, cause, status, occurrences,
    attempt_count, deliver_after, next_attempt_at, lease_owner, lease_until, attempt_started_at,
    created_at, finished_at)
SELECT id, tenant, job_id, scheduled_for, cause, status, occurrences, attempt_count,
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
ALTER TABLE runs_new RENAME TO runs;
ALTER TABLE attempts_new RENAME TO attempts;

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
CREATE INDEX runs_deliveries ON runs (tenant, subscription_id, created_at DESC, id DESC)
    WHERE subscription_id IS NOT NULL;

ALTER TABLE jobs ADD COLUMN pause_on_failure INTEGER NOT NULL DEFAULT 0;
