-- Every running process, with its heartbeat: a lease whose owner has not
-- beaten for --instance-timeout-s is taken over at once, whatever its
-- lease_until (DESIGN.md §5). Instants in microseconds, as elsewhere.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    version      TEXT NOT NULL
) STRICT;

-- A lease's owner, looked up by lease recovery and GET /v1/instances.
CREATE INDEX runs_lease_owner ON runs (lease_owner) WHERE status = 'running';
