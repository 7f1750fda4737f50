-- DESIGN.md §11.5, monitor-only jobs: each fire time makes a run
-- `awaiting` its ping; a ping no run awaited is a run of cause `ping`.
-- SQLite cannot change a CHECK in place: runs and attempts are rebuilt as
-- in 0017, with the columns added since, and their indexes made again.
CREATE TABLE runs_new (
    id                 TEXT PRIMARY KEY,
    tenant             TEXT NOT NULL,
    job_id             TEXT,
    subscription_id    TEXT,
    event_id           TEXT,
    scheduled_for      INTEGER NOT NULL,
    cause              TEXT NOT NULL CHECK (cause IN ('schedule', 'manual', 'event', 'backfill',
                                                    'ping')),
    status             TEXT NOT NULL CHECK (status IN ('pending', 'awaiting', 'running',
                                                      'succeeded', 'failed', 'missed',
                                                      'skipped', 'cancelled')),
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
    request            TEXT,
    backfill_id        TEXT,
    replay_of          TEXT,
    flow_key           TEXT,
    priority           INTEGER NOT NULL DEFAULT 0,
    wait_until         INTEGER,
    nominal_for        INTEGER,
    FOREIGN KEY (tenant, job_id) REFERENCES jobs (tenant, id) ON DELETE CASCADE,
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
    outcome_reason   TEXT,
    body_truncated   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, number)
) STRICT;
INSERT INTO attempts_new SELECT * FROM attempts;

DROP TABLE attempts;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
ALTER TABLE attempts_new RENAME TO attempts;

CREATE UNIQUE INDEX runs_one_per_occurrence ON runs (tenant, job_id, scheduled_for)
    WHERE cause IN ('schedule', 'backfill') AND replay_of IS NULL;
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
CREATE INDEX runs_by_backfill ON runs (backfill_id, scheduled_for) WHERE backfill_id IS NOT NULL;
CREATE INDEX runs_flow ON runs (tenant, flow_key, priority DESC, scheduled_for, id)
    WHERE flow_key IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX runs_awaiting ON runs (tenant, job_id, scheduled_for) WHERE status = 'awaiting';

-- A monitor's ping key: unguessable, rotatable, not an API token. A
-- monitor-only job keeps its target columns empty (NOT NULL cannot change
-- without rebuilding jobs) and its grace in `alerts`, which the watchdog
-- reads.
ALTER TABLE jobs ADD COLUMN ping_key TEXT;
CREATE UNIQUE INDEX jobs_by_ping_key ON jobs (ping_key) WHERE ping_key IS NOT NULL;
