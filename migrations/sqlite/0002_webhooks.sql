-- Webhook endpoints. Secrets and custom header values are sealed under the
-- master key; the URL and the event patterns are configuration, not secrets.
CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    url                        TEXT    NOT NULL,
    events                     TEXT    NOT NULL,
    headers                    BLOB,
    description                TEXT,
    enabled                    INTEGER NOT NULL,
    status                     TEXT    NOT NULL,
    disabled_reason            TEXT,
    ordering                   TEXT    NOT NULL,
    content                    TEXT    NOT NULL,
    payload_version            INTEGER NOT NULL,
    rate_limit_per_second      INTEGER,
    max_in_flight              INTEGER NOT NULL,
    secret                     BLOB    NOT NULL,
    previous_secret            BLOB,
    previous_secret_expires_at TEXT,
    failing_since              TEXT,
    created_at                 TEXT    NOT NULL,
    updated_at                 TEXT    NOT NULL,
    deleted_at                 TEXT
);

-- The exact event types each endpoint receives (its patterns, expanded).
-- A delivery row is created, in the event's own transaction, for every
-- enabled endpoint subscribed to the event's type.
CREATE TABLE endpoint_subscriptions (
    event_type  TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    PRIMARY KEY (event_type, endpoint_id)
) WITHOUT ROWID;

CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id      TEXT    NOT NULL,
    event_sequence   INTEGER NOT NULL,
    event_id         TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    record_key       TEXT,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_attempt_at  TEXT,
    last_http_status INTEGER,
    last_error       TEXT,
    failure_reason   TEXT,
    created_at       TEXT    NOT NULL,
    completed_at     TEXT,
    UNIQUE (endpoint_id, event_sequence)
);
CREATE INDEX deliveries_by_status ON deliveries (status, id);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, id);

CREATE TABLE delivery_attempts (
    id               INTEGER PRIMARY KEY,
    delivery_id      INTEGER NOT NULL,
    attempted_at     TEXT    NOT NULL,
    duration_ms      REAL    NOT NULL,
    http_status      INTEGER,
    error_kind       TEXT,
    response_snippet TEXT
);
CREATE INDEX attempts_by_delivery ON delivery_attempts (delivery_id, id);
