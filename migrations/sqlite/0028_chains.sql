-- DESIGN.md §11.8, chains: when a run of `parent_id` ends as `on_end`
-- says, `child_id` gets one run, `delay_s` later. The edges are the
-- parent's (written when it is saved; its definition keeps them too) and
-- live apart from both jobs, so replacing the child keeps them, and a
-- job's referrers are found by index. A chained run keeps its parent's
-- run: at most one run of a job per parent run. Its cause is stored as
-- `manual` (SQLite cannot change the cause CHECK without rebuilding runs);
-- `parent_run_id` makes it `chain`.
CREATE TABLE job_edges (
    tenant    TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    on_end    TEXT NOT NULL CHECK (on_end IN ('success', 'failure', 'complete')),
    child_id  TEXT NOT NULL,
    delay_s   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, parent_id, on_end, child_id),
    FOREIGN KEY (tenant, parent_id) REFERENCES jobs (tenant, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX job_edges_by_child ON job_edges (tenant, child_id);
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
CREATE UNIQUE INDEX runs_one_per_parent ON runs (tenant, job_id, parent_run_id)
    WHERE parent_run_id IS NOT NULL;
