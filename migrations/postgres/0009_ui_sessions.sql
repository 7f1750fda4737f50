-- Dashboard sessions (DESIGN.md §8): the cookie holds a random id whose
-- SHA-256 is kept here, never the API token; the token it stands for, the
-- CSRF token its forms carry, and when it expires. Signing out deletes it.
CREATE TABLE ui_sessions (
    hash       TEXT PRIMARY KEY,
    token_id   TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
