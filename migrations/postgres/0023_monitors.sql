-- DESIGN.md §11.5, monitor-only jobs: each fire time makes a run
-- `awaiting` its ping; a ping no run awaited is a run of cause `ping`.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('pending', 'awaiting', 'running', 'succeeded', 'failed', 'missed',
                      'skipped', 'cancelled'));
ALTER TABLE runs DROP CONSTRAINT runs_cause_check;
ALTER TABLE runs ADD CONSTRAINT runs_cause_check
    CHECK (cause IN ('schedule', 'manual', 'event', 'backfill', 'ping'));
-- The watchdog finds a monitor's runs past their grace, and a ping its
-- job's open runs, without reading the job's history.
CREATE INDEX runs_awaiting ON runs (tenant, job_id, scheduled_for) WHERE status = 'awaiting';

-- A monitor's ping key: unguessable, rotatable, not an API token. A
-- monitor-only job keeps its target columns empty (they stay NOT NULL, as
-- SQLite cannot change that without rebuilding jobs) and its grace in
-- `alerts`, which the watchdog reads.
ALTER TABLE jobs ADD COLUMN ping_key TEXT;
CREATE UNIQUE INDEX jobs_by_ping_key ON jobs (ping_key) WHERE ping_key IS NOT NULL;
