-- DESIGN.md §11.7, long runs. A callback job's run stays `running` from
-- the response that accepted it until the receiver completes it, or the
-- watchdog ends it at `watch_at`: the earlier of `deadline_at` (the end of
-- `timeout_s`, or of a cancel's grace) and `heartbeat_due_at`. A cancel
-- asked of it sets `cancel_requested_at` (shown as `cancelling`); it
-- still counts as in flight. `completion` is the receiver's report as
-- JSON text, so a repeat of it is recognised.
ALTER TABLE runs ADD COLUMN accepted_at INTEGER;
ALTER TABLE runs ADD COLUMN deadline_at INTEGER;
ALTER TABLE runs ADD COLUMN heartbeat_s INTEGER;
ALTER TABLE runs ADD COLUMN heartbeat_due_at INTEGER;
ALTER TABLE runs ADD COLUMN watch_at INTEGER;
ALTER TABLE runs ADD COLUMN last_heartbeat_at INTEGER;
ALTER TABLE runs ADD COLUMN progress REAL;
ALTER TABLE runs ADD COLUMN message TEXT;
ALTER TABLE runs ADD COLUMN completion TEXT;
ALTER TABLE runs ADD COLUMN cancel_requested_at INTEGER;
-- The watchdog finds runs past their time without reading the others.
CREATE INDEX runs_watched ON runs (watch_at) WHERE watch_at IS NOT NULL;
