-- DESIGN.md §11.8, dependency gates: `job_id` may run at a fire time only
-- if `required_id` has a run that succeeded within `within_s` of it (all
-- of its `requires`, one of its `requires_any`). The rows are the gated
-- job's (written when it is saved; its definition keeps them too); the
-- index finds, when a run of a required job succeeds, the runs waiting
-- for it. A run held by a gate waits with `wait_reason = 'dependency:<job>'`
-- until it succeeds or the wait passes (`missed`); the watchdog looks at it
-- again at `gate_check_at`.
CREATE TABLE job_requires (
    tenant      TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    required_id TEXT NOT NULL,
    any_of      INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    within_s    INTEGER NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('skip', 'wait')),
    wait_max_s  INTEGER NOT NULL,
    PRIMARY KEY (tenant, job_id, required_id),
    FOREIGN KEY (tenant, job_id) REFERENCES jobs (tenant, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX job_requires_by_required ON job_requires (tenant, required_id);
ALTER TABLE runs ADD COLUMN gate_check_at INTEGER;
CREATE INDEX runs_gated ON runs (gate_check_at) WHERE gate_check_at IS NOT NULL;
