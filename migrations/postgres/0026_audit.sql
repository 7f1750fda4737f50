-- DESIGN.md §11.9, audit: one record per change, written in the change's
-- transaction. Ids are UUIDv7, in time order: the tenant's trail and a
-- target's are read newest first by id, and retention deletes by id.
CREATE TABLE audit (
    id UUID PRIMARY KEY,
    tenant TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    actor_name TEXT,
    actor_role TEXT,
    request_id TEXT,
    source_ip TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT,
    changes TEXT NOT NULL
);
CREATE INDEX audit_by_tenant ON audit (tenant, id);
CREATE INDEX audit_by_target ON audit (tenant, target, id);
