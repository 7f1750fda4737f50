-- DESIGN.md §11.3, backfill: a run (cause `backfill`) for each occurrence
-- of a range that has none, or with `reprocess` a new run beside it
-- (`replay_of`). SQLite cannot change a CHECK in place: runs and attempts
-- are rebuilt as in 0015 (the child dropped before its parent), with the
-- columns of 0016 and the two new ones last, and their indexes made again.
CREATE TABLE backfills (
    tenant       TEXT NOT NULL,
    id           TEXT PRIMARY KEY,
    job_id       TEXT NOT NULL,
    range_from   INTEGER NOT NULL,
    range_to     INTEGER NOT NULL,
    overlap      TEXT NOT NULL CHECK (overlap IN ('skip', 'buffer_one', 'buffer_all')),
    reprocess    INTEGER NOT NULL,
    occurrences  INTEGER NOT NULL,
    runs_made    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    cancelled_at INTEGER,
    FOREIGN KEY (tenant, job_id) REFERENCES jobs (tenant, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX backfills_by_job ON backfills (tenant, job_id);

CREATE TABLE runs_new (
    id                 TEXT PRIMARY KEY,
    tenant             TEXT NOT NULL,
    job_id             TEXT,
    subscription_id    TEXT,
    event_id           TEXT,
    scheduled_for      INTEGER NOT NULL,
    cause              TEXT NOT NULL CHECK (cause IN ('schedule', 'manual', 'event', 'backfill')),
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
    request            TEXT,
    backfill_id        TEXT,
    replay_of          TEXT,
    FOREIGN KEY (tenant, job_id) REFERENCES jobs (tenant, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant, subscription_id) REFERENCES subscriptions (tenant, id) ON DELETE CASCADE,
    CHECK ((job_id IS NULL) <> (subscription_id IS NULL))
) STRICT;
INSERT INTO runs_new SELECT *, NULL, NULL FROM runs;

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
