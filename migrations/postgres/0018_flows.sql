-- DESIGN.md §11.1, flow keys: limits shared by many jobs of a tenant.
-- A key's row holds its limits (defined by `PUT /v1/flows/{key}`, or by
-- the first job that declares them), whether it is paused, its token
-- bucket (tokens at an instant, on the database's clock), and when
-- waiting runs may next go by time alone. Admission locks the row.
CREATE TABLE flows (
    tenant        TEXT NOT NULL,
    key           TEXT NOT NULL,
    max_in_flight BIGINT CHECK (max_in_flight >= 1),
    rate_limit    BIGINT CHECK (rate_limit >= 1),
    rate_period_s BIGINT CHECK (rate_period_s >= 1),
    defined_by    TEXT NOT NULL CHECK (defined_by IN ('api', 'job')),
    paused        BOOLEAN NOT NULL DEFAULT false,
    tokens        DOUBLE PRECISION NOT NULL,
    tokens_at     TIMESTAMPTZ NOT NULL,
    next_admit_at TIMESTAMPTZ,
    PRIMARY KEY (tenant, key),
    CHECK ((rate_limit IS NULL) = (rate_period_s IS NULL))
);
CREATE INDEX flows_due ON flows (next_admit_at) WHERE next_admit_at IS NOT NULL;

-- A job's flow as given (JSON), and its key apart for the scheduler.
ALTER TABLE jobs ADD COLUMN flow TEXT;
ALTER TABLE jobs ADD COLUMN flow_key TEXT;
-- A run of a flow job: its key, priority and the instant past which it
-- no longer waits (`max_wait_s`).
ALTER TABLE runs ADD COLUMN flow_key TEXT;
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN wait_until TIMESTAMPTZ;
CREATE INDEX runs_flow ON runs (tenant, flow_key, priority DESC, scheduled_for, id)
    WHERE flow_key IS NOT NULL AND status IN ('pending', 'running');
