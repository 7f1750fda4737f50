-- Every running process, with its heartbeat on the database clock: a lease
-- whose owner has not beaten for --instance-timeout-s is taken over at
-- once, whatever its lease_until (DESIGN.md §5).
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    version      TEXT NOT NULL
);

-- A lease's owner, looked up by lease recovery and GET /v1/instances.
CREATE INDEX runs_lease_owner ON runs (lease_owner) WHERE status = 'running';
