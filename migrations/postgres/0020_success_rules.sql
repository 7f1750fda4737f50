-- DESIGN.md §11.6, success and retry rules. `delivery_rules` is the JSON
-- text of a job's `target.success` and of `retry_on`, `never_retry`,
-- `max_age_s` and `delays_s`; null for the defaults, so a job without
-- rules carries one null to its claims.
ALTER TABLE jobs ADD COLUMN delivery_rules TEXT;
-- Why the rules refused an answer (`200 but $.status = "error", expected
-- "done"`), and whether the excerpt they read is the body's first 64 kB.
ALTER TABLE attempts ADD COLUMN outcome_reason TEXT;
ALTER TABLE attempts ADD COLUMN body_truncated BOOLEAN NOT NULL DEFAULT false;
