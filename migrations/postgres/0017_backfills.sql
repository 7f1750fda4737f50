-- DESIGN.md §11.3, backfill: a run (cause `backfill`) for each occurrence
-- of a range that has none, or with `reprocess` a new run beside it
-- (`replay_of`). One run per occurrence still holds for scheduled and
-- backfilled runs alike; a replay stands beside the run it replays.
CREATE TABLE backfills (
    tenant       TEXT NOT NULL,
    id           UUID PRIMARY KEY,
    job_id       TEXT NOT NULL,
    range_from   TIMESTAMPTZ NOT NULL,
    range_to     TIMESTAMPTZ NOT NULL,
    overlap      TEXT NOT NULL CHECK (overlap IN ('skip', 'buffer_one', 'buffer_all')),
    reprocess    BOOLEAN NOT NULL,
    occurrences  BIGINT NOT NULL,
    runs_made    BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    cancelled_at TIMESTAMPTZ,
    FOREIGN KEY (tenant, job_id) REFERENCES jobs (tenant, id) ON DELETE CASCADE
);
CREATE INDEX backfills_by_job ON backfills (tenant, job_id);

ALTER TABLE runs ADD COLUMN backfill_id UUID;
ALTER TABLE runs ADD COLUMN replay_of UUID;
ALTER TABLE runs DROP CONSTRAINT runs_cause_check;
ALTER TABLE runs ADD CONSTRAINT runs_cause_check
    CHECK (cause IN ('schedule', 'manual', 'event', 'backfill'));
DROP INDEX runs_one_per_occurrence;
CREATE UNIQUE INDEX runs_one_per_occurrence ON runs (tenant, job_id, scheduled_for)
    WHERE cause IN ('schedule', 'backfill') AND replay_of IS NULL;
CREATE INDEX runs_by_backfill ON runs (backfill_id, scheduled_for) WHERE backfill_id IS NOT NULL;
