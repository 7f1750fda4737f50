-- Events (DESIGN.md §9), written in the same transaction as the change
-- they describe. Readers order them by (txid, seq) and see only those of
-- transactions older than every one still running, so that a reader never
-- passes an event whose transaction commits later: resuming after an event
-- loses and repeats nothing.
CREATE TABLE events (
    id     UUID PRIMARY KEY,
    seq    BIGINT GENERATED ALWAYS AS IDENTITY,
    txid   XID8 NOT NULL DEFAULT pg_current_xact_id(),
    tenant TEXT NOT NULL,
    type   TEXT NOT NULL,
    at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    job_id TEXT NOT NULL,
    run_id UUID,
    data   TEXT NOT NULL
);
CREATE INDEX events_by_position ON events (tenant, txid, seq);

-- Subscriptions deliver events as signed webhooks.
CREATE TABLE subscriptions (
    tenant         TEXT NOT NULL,
    id             TEXT NOT NULL,
    target_url     TEXT NOT NULL,
    -- The URL's password, sealed.
    target_secrets TEXT,
    -- Event types, comma separated.
    types          TEXT NOT NULL,
    job_id         TEXT,
    secret         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id)
);

-- A subscription's delivery of an event is a run of the same dispatcher:
-- no job, its subscription and event instead.
ALTER TABLE runs ALTER COLUMN job_id DROP NOT NULL;
ALTER TABLE runs ADD COLUMN subscription_id TEXT;
ALTER TABLE runs ADD COLUMN event_id UUID;
ALTER TABLE runs ADD CONSTRAINT runs_subscription_fkey
    FOREIGN KEY (tenant, subscription_id) REFERENCES subscriptions (tenant, id) ON DELETE CASCADE;
ALTER TABLE runs ADD CONSTRAINT runs_job_or_subscription
    CHECK ((job_id IS NULL) <> (subscription_id IS NULL));
ALTER TABLE runs DROP CONSTRAINT runs_cause_check;
ALTER TABLE runs ADD CONSTRAINT runs_cause_check CHECK (cause IN ('schedule', 'manual', 'event'));
CREATE INDEX runs_deliveries ON runs (tenant, subscription_id, created_at DESC, id DESC)
    WHERE subscription_id IS NOT NULL;
-- Attempts made before the run was sent again (redrive): its retry policy
-- counts from there.
ALTER TABLE runs ADD COLUMN prior_attempts INT NOT NULL DEFAULT 0;

ALTER TABLE jobs ADD COLUMN pause_on_failure BOOLEAN NOT NULL DEFAULT false;
