-- A job's definition in a shape of the store's own: a column per field, so
-- that SQL reads real columns (timeout_s for the lease, the retry policy
-- for lease recovery) and the API's request form can change without a
-- data migration. JSON stays only for what is free-form: target headers
-- and body, metadata, kept as the text the service wrote (JSONB would
-- round numbers a client may send, such as 1.7976931348623157e308).
-- Existing rows are carried over from the JSON columns, with the defaults
-- the API filled in.
ALTER TABLE jobs
    ADD COLUMN trigger_type      TEXT,
    ADD COLUMN cron_expr         TEXT,
    ADD COLUMN cron_timezone     TEXT,
    ADD COLUMN every_s           BIGINT,
    ADD COLUMN run_at            TIMESTAMPTZ,
    ADD COLUMN start_at          TIMESTAMPTZ,
    ADD COLUMN end_at            TIMESTAMPTZ,
    ADD COLUMN jitter_s          BIGINT,
    ADD COLUMN target_url        TEXT,
    ADD COLUMN target_method     TEXT,
    ADD COLUMN target_headers    TEXT,
    ADD COLUMN target_body       TEXT,
    ADD COLUMN timeout_s         BIGINT,
    ADD COLUMN max_attempts      BIGINT,
    ADD COLUMN backoff_initial_s BIGINT,
    ADD COLUMN backoff_max_s     BIGINT;

UPDATE jobs SET
    trigger_type      = trigger->>'type',
    cron_expr         = trigger->>'expr',
    cron_timezone     = CASE WHEN trigger->>'type' = 'cron'
                             THEN COALESCE(trigger->>'timezone', 'UTC') END,
    every_s           = (trigger->>'every_s')::bigint,
    run_at            = (trigger->>'run_at')::timestamptz,
    start_at          = (trigger->>'start_at')::timestamptz,
    end_at            = (trigger->>'end_at')::timestamptz,
    jitter_s          = COALESCE((trigger->>'jitter_s')::bigint, 0),
    target_url        = target->>'url',
    target_method     = upper(COALESCE(target->>'method', 'POST')),
    target_headers    = CASE WHEN jsonb_typeof(target->'headers') = 'object'
                             THEN (target->'headers')::text ELSE '{}' END,
    target_body       = CASE WHEN jsonb_typeof(target->'body') = 'null' THEN NULL
                             ELSE (target->'body')::text END,
    timeout_s         = COALESCE((target->>'timeout_s')::bigint, 30),
    max_attempts      = COALESCE((retry->>'max_attempts')::bigint, 3),
    backoff_initial_s = COALESCE((retry->>'backoff_initial_s')::bigint, 1),
    backoff_max_s     = COALESCE((retry->>'backoff_max_s')::bigint, 300);

ALTER TABLE jobs
    ALTER COLUMN trigger_type      SET NOT NULL,
    ALTER COLUMN jitter_s          SET NOT NULL,
    ALTER COLUMN target_url        SET NOT NULL,
    ALTER COLUMN target_method     SET NOT NULL,
    ALTER COLUMN target_headers    SET NOT NULL,
    ALTER COLUMN timeout_s         SET NOT NULL,
    ALTER COLUMN max_attempts      SET NOT NULL,
    ALTER COLUMN backoff_initial_s SET NOT NULL,
    ALTER COLUMN backoff_max_s     SET NOT NULL,
    ALTER COLUMN max_instances     TYPE BIGINT,
    ALTER COLUMN metadata          TYPE TEXT USING metadata::text,
    ADD CHECK (trigger_type IN ('cron', 'interval', 'date')),
    DROP COLUMN trigger,
    DROP COLUMN target,
    DROP COLUMN retry;
