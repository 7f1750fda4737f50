-- DESIGN.md §11.2: a target with `template` renders its expressions when a
-- run is made, and the run keeps what it sends in `request` (its secrets
-- sealed to the run's row), so that retries and redrives send the same
-- bytes. Null for a run of a job without a template.
ALTER TABLE jobs ADD COLUMN target_template BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE runs ADD COLUMN request TEXT;
