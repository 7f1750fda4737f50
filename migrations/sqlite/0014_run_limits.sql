-- DESIGN.md §11.3: a job that stops after `max_runs` scheduled runs that
-- were sent. `runs_counted` counts them while `max_runs` is set (a new
-- limit on a job without one counts from zero); `on_complete` says
-- whether the job is kept or deleted once completed and its last run ends.
ALTER TABLE jobs ADD COLUMN max_runs INTEGER CHECK (max_runs >= 1);
ALTER TABLE jobs ADD COLUMN runs_counted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN on_complete TEXT NOT NULL DEFAULT 'keep'
    CHECK (on_complete IN ('keep', 'delete'));
