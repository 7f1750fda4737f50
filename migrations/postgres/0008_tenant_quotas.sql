-- Quotas root set for one tenant (DESIGN.md §8); a null is the flag's
-- default.
CREATE TABLE tenant_quotas (
    tenant          TEXT PRIMARY KEY,
    jobs            BIGINT,
    subscriptions   BIGINT,
    runs_per_minute BIGINT,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- Runs each tenant's jobs made per minute (minutes since the epoch), for
-- the runs-per-minute quota; past minutes are deleted by retention.
CREATE TABLE tenant_runs_made (
    tenant TEXT NOT NULL,
    minute BIGINT NOT NULL,
    made   BIGINT NOT NULL,
    PRIMARY KEY (tenant, minute)
);
