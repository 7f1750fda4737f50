-- DESIGN.md §11.4, calendars: a tenant's named sets of days and times.
-- `rules` is the JSON text of the rules as written (dates local to
-- `timezone`). A job keeps a snapshot of the calendars its trigger uses
-- in `jobs.trigger_more`, rewritten when one of them changes.
CREATE TABLE calendars (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    description TEXT,
    rules       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;

-- What the trigger columns do not hold (JSON text): an `H` expression as
-- written, an any_of's parts (stored as type `cron` without an
-- expression: the column's CHECK cannot change without rebuilding jobs,
-- runs, attempts and backfills), a trigger's calendars and their snapshot.
ALTER TABLE jobs ADD COLUMN trigger_more TEXT;
-- A run of an occurrence its calendars moved: the occurrence's own time.
ALTER TABLE runs ADD COLUMN nominal_for INTEGER;
