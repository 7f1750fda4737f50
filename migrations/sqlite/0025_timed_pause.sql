-- DESIGN.md §11.9, timed pause: a paused job's end and reason. The
-- watchdog resumes the jobs whose end has come, found by this index.
ALTER TABLE jobs ADD COLUMN paused_until INTEGER;
ALTER TABLE jobs ADD COLUMN pause_reason TEXT;
CREATE INDEX jobs_paused_until ON jobs (paused_until) WHERE paused_until IS NOT NULL;
