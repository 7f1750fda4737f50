-- DESIGN.md §11.1: what a run over max_instances does. `skip` records it
-- skipped (as before); `buffer_one` and `buffer_all` keep it waiting.
ALTER TABLE jobs ADD COLUMN overlap TEXT NOT NULL DEFAULT 'skip'
    CHECK (overlap IN ('skip', 'buffer_one', 'buffer_all'));
ALTER TABLE jobs ADD COLUMN buffer_max BIGINT;

-- A waiting run is `pending` with a `wait_reason` and no next attempt, so
-- no dispatcher's claim sees it; the end of a run of its job releases the
-- oldest. `reason` says why a run ended as it did (`buffer_full`).
ALTER TABLE runs ADD COLUMN wait_reason TEXT;
ALTER TABLE runs ADD COLUMN reason TEXT;

-- The waiting runs of a job, oldest first; only they have an entry.
CREATE INDEX runs_waiting ON runs (tenant, job_id, scheduled_for, id)
    WHERE wait_reason IS NOT NULL;
