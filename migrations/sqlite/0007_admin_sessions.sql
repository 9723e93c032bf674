-- Admin page sessions: one row per signed-in browser. Only the SHA-256 of
-- the session token is kept; the token itself lives in the browser's cookie.
CREATE TABLE admin_sessions (
    token_hash   BLOB PRIMARY KEY,
    key_id       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX admin_sessions_by_key ON admin_sessions (key_id);

-- The Integrations page counts each endpoint's attempts of the last 24 hours.
CREATE INDEX attempts_by_time ON delivery_attempts (attempted_at);
