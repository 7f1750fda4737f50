-- Issue 23: a run's lease owner is read only among running runs, which
-- runs_leased already holds (a few per delivery slot): one index entry
-- less per delivery. (PostgreSQL's migration also leaves room on its
-- pages; SQLite has no such setting.)
DROP INDEX runs_lease_owner;
