-- DESIGN.md §11.1, overlap `replace`: the oldest run in flight is
-- cancelled (its request aborted) and the new run goes.
ALTER TABLE jobs DROP CONSTRAINT jobs_overlap_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_overlap_check
    CHECK (overlap IN ('skip', 'buffer_one', 'buffer_all', 'replace'));
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'missed', 'skipped', 'cancelled'));
