-- Runs across jobs, newest first (GET /v1/runs), and the failed ones alone
-- (the page an operator opens at 3 a.m.), without scanning every run.
CREATE INDEX runs_recent ON runs (created_at DESC, id DESC);
CREATE INDEX runs_failed ON runs (created_at DESC, id DESC) WHERE status = 'failed';

-- Idempotency-Key: the first request with a key records what it created,
-- in the same transaction; a repeat within 24 h answers with that.
CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
