-- The host (`host:port`) a run's request goes to: a dispatcher whose
-- requests to a host are at --max-in-flight-per-host claims none of that
-- host's runs until one ends. Null for runs made before: never held back.
ALTER TABLE runs ADD COLUMN host TEXT;

-- A subscription's host, for its deliveries.
ALTER TABLE subscriptions ADD COLUMN host TEXT;
