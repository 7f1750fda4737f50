-- DESIGN.md §11.5, alerts. A job's `alerts` is the JSON text of its alert
-- settings and `mute_until`; null when it does not alert.
ALTER TABLE jobs ADD COLUMN alerts TEXT;
-- The watchdog reads these each second: never a scan of every job.
CREATE INDEX jobs_alerting ON jobs (tenant, id) WHERE alerts IS NOT NULL;

-- One row per alert: at most one not resolved per (job, condition). The
-- watchdog opens, reminds and resolves them; `POST /v1/alerts/{id}/ack`
-- acknowledges one (no reminders until it resolves).
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    condition   TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('open', 'acked', 'resolved')),
    run_id      TEXT,
    detail      TEXT NOT NULL,
    opened_at   INTEGER NOT NULL,
    notified_at INTEGER NOT NULL,
    reminders   INTEGER NOT NULL DEFAULT 0,
    acked_at    INTEGER,
    resolved_at INTEGER
) STRICT;
CREATE UNIQUE INDEX alerts_one_open ON alerts (tenant, job_id, condition)
    WHERE state <> 'resolved';
CREATE INDEX alerts_by_job ON alerts (tenant, job_id, opened_at DESC);
CREATE INDEX alerts_by_tenant ON alerts (tenant, opened_at DESC);

-- How a subscription's deliveries are shaped: `standard` (the event as
-- JSON) or `slack` (`{"text": …}`, for Slack-compatible incoming webhooks).
ALTER TABLE subscriptions ADD COLUMN format TEXT NOT NULL DEFAULT 'standard';
