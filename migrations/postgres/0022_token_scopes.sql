-- What a token may do beyond its role, comma-separated: `metrics` lets a
-- read or write token scrape /metrics, so Prometheus needs no root token.
ALTER TABLE tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
