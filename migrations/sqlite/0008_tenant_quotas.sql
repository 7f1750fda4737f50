-- Quotas root set for one tenant (DESIGN.md §8); a null is the flag's
-- default.
CREATE TABLE tenant_quotas (
    tenant          TEXT PRIMARY KEY,
    jobs            INTEGER,
    subscriptions   INTEGER,
    runs_per_minute INTEGER,
    updated_at      INTEGER NOT NULL
);

-- Runs each tenant's jobs made per minute (minutes since the epoch), for
-- the runs-per-minute quota; past minutes are deleted by retention.
CREATE TABLE tenant_runs_made (
    tenant TEXT NOT NULL,
    minute INTEGER NOT NULL,
    made   INTEGER NOT NULL,
    PRIMARY KEY (tenant, minute)
);
