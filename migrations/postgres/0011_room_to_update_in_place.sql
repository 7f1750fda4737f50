-- Issue 23: the database work per delivery. A job's row is updated at
-- every claim of it, for as long as the job lives; on a full page each
-- update moves the row to another page, which logs the whole new row and a
-- lock record besides. Room left on each page keeps most updates on their
-- page (only the changed bytes are logged, and old versions are pruned in
-- place). Applies to pages written from now on. (Runs are updated twice
-- in their life, then kept: room on their pages would be empty for good.)
ALTER TABLE jobs SET (fillfactor = 80);

-- A run's lease owner is read only among running runs, which
-- runs_leased already holds (a few per delivery slot): one index entry
-- less per delivery.
DROP INDEX runs_lease_owner;
