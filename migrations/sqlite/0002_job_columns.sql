-- A job's definition in a shape of the store's own: a column per field, so
-- that SQL reads real columns (timeout_s for the lease, the retry policy
-- for lease recovery) and the API's request form can change without a
-- data migration. JSON stays only for what is free-form: target headers
-- and body, metadata. Existing rows are carried over from the JSON
-- columns, with the defaults the API filled in; their instants, RFC 3339
-- in UTC there, become integer microseconds like every other instant.
-- (The column defaults exist only because SQLite needs one to add a NOT
-- NULL column; every write sets every column.)
ALTER TABLE jobs ADD COLUMN trigger_type TEXT NOT NULL DEFAULT 'date'
    CHECK (trigger_type IN ('cron', 'interval', 'date'));
ALTER TABLE jobs ADD COLUMN cron_expr TEXT;
ALTER TABLE jobs ADD COLUMN cron_timezone TEXT;
ALTER TABLE jobs ADD COLUMN every_s INTEGER;
ALTER TABLE jobs ADD COLUMN run_at INTEGER;
ALTER TABLE jobs ADD COLUMN start_at INTEGER;
ALTER TABLE jobs ADD COLUMN end_at INTEGER;
ALTER TABLE jobs ADD COLUMN jitter_s INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN target_url TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN target_method TEXT NOT NULL DEFAULT 'POST';
ALTER TABLE jobs ADD COLUMN target_headers TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN target_body TEXT;
ALTER TABLE jobs ADD COLUMN timeout_s INTEGER NOT NULL DEFAULT 30;
ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;
ALTER TABLE jobs ADD COLUMN backoff_initial_s INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN backoff_max_s INTEGER NOT NULL DEFAULT 300;

-- 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z' to microseconds since the epoch.
CREATE TEMP VIEW job_instants AS
SELECT id, name, value AS text,
       CAST(strftime('%s', substr(value, 1, 19)) AS INTEGER) * 1000000
       + CASE WHEN substr(value, 20, 1) = '.'
              THEN CAST(substr(substr(value, 21, length(value) - 21) || '000000', 1, 6) AS INTEGER)
              ELSE 0 END AS micros
FROM (SELECT j.id, f.key AS name, f.value
      FROM jobs j, json_each(j.trigger) f
      WHERE f.key IN ('run_at', 'start_at', 'end_at') AND f.type = 'text');

UPDATE jobs SET
    trigger_type      = json_extract(trigger, '$.type'),
    cron_expr         = json_extract(trigger, '$.expr'),
    cron_timezone     = CASE WHEN json_extract(trigger, '$.type') = 'cron'
                             THEN COALESCE(json_extract(trigger, '$.timezone'), 'UTC') END,
    every_s           = json_extract(trigger, '$.every_s'),
    run_at            = (SELECT micros FROM job_instants i WHERE i.id = jobs.id AND i.name = 'run_at'),
    start_at          = (SELECT micros FROM job_instants i WHERE i.id = jobs.id AND i.name = 'start_at'),
    end_at            = (SELECT micros FROM job_instants i WHERE i.id = jobs.id AND i.name = 'end_at'),
    jitter_s          = COALESCE(json_extract(trigger, '$.jitter_s'), 0),
    target_url        = json_extract(target, '$.url'),
    target_method     = upper(COALESCE(json_extract(target, '$.method'), 'POST')),
    target_headers    = COALESCE(NULLIF(target -> '$.headers', 'null'), '{}'),
    target_body       = NULLIF(target -> '$.body', 'null'),
    timeout_s         = COALESCE(json_extract(target, '$.timeout_s'), 30),
    max_attempts      = COALESCE(json_extract(retry, '$.max_attempts'), 3),
    backoff_initial_s = COALESCE(json_extract(retry, '$.backoff_initial_s'), 1),
    backoff_max_s     = COALESCE(json_extract(retry, '$.backoff_max_s'), 300);

DROP VIEW job_instants;
ALTER TABLE jobs DROP COLUMN trigger;
ALTER TABLE jobs DROP COLUMN target;
ALTER TABLE jobs DROP COLUMN retry;
