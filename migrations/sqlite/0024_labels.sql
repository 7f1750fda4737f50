-- DESIGN.md §11.9: a job's labels, a JSON object of strings as text, read
-- with the job and matched by a selector (`GET /v1/jobs?selector=`, bulk
-- actions) in the same statement that lists the tenant's jobs.
ALTER TABLE jobs ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
