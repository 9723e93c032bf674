-- chartwire on PostgreSQL: the same tables as on SQLite, with the columns
-- several processes need to share one database (endpoint leases, the
-- committed head of the event log).
--
-- Times are RFC 3339 UTC text with a fixed width, as on SQLite, so that both
-- backends order and compare them the same way; lease times use the
-- server's clock (`now()`), so processes on different hosts agree.

CREATE TABLE records (
    id          BIGINT  PRIMARY KEY,
    record_type TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    patient_id  BIGINT,
    body        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    deleted_at  TEXT
);
CREATE INDEX records_by_type ON records (record_type, id);
CREATE INDEX records_by_patient ON records (record_type, patient_id, id);
-- Record ids are shared by every process; gaps are fine.
CREATE SEQUENCE record_ids;

-- The event log. Sequences come from `event_sequences`, but only while the
-- appending transaction holds the append lock (an advisory lock held until
-- COMMIT), so sequences become visible in the order they were given: a
-- reader of `sequence > cursor` never skips one.
CREATE SEQUENCE event_sequences;
CREATE TABLE events (
    sequence        BIGINT  PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    event_type      TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    payload_version BIGINT  NOT NULL,
    occurred_at     TEXT    NOT NULL,
    actor_type      TEXT    NOT NULL,
    actor_id        TEXT,
    record_type     TEXT,
    record_id       BIGINT,
    data            TEXT    NOT NULL
);
CREATE INDEX events_by_time ON events (occurred_at);

CREATE TABLE api_keys (
    id           TEXT  PRIMARY KEY,
    name         TEXT  NOT NULL,
    role         TEXT  NOT NULL,
    key_hash     BYTEA NOT NULL UNIQUE,
    created_at   TEXT  NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

-- Small named numbers the store keeps: `events_head` (the highest committed
-- sequence, written under the append lock) and `events_pruned_through`.
CREATE TABLE store_meta (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO store_meta (name, value) VALUES ('events_head', 0), ('events_pruned_through', 0);

CREATE TABLE webhook_endpoints (
    id                         TEXT    PRIMARY KEY,
    url                        TEXT    NOT NULL,
    events                     TEXT    NOT NULL,
    headers                    BYTEA,
    description                TEXT,
    enabled                    BOOLEAN NOT NULL,
    status                     TEXT    NOT NULL,
    disabled_reason            TEXT,
    ordering                   TEXT    NOT NULL,
    content                    TEXT    NOT NULL,
    payload_version            BIGINT  NOT NULL,
    rate_limit_per_second      BIGINT,
    max_in_flight              BIGINT  NOT NULL,
    secret                     BYTEA   NOT NULL,
    previous_secret            BYTEA,
    previous_secret_expires_at TEXT,
    failing_since              TEXT,
    created_at                 TEXT    NOT NULL,
    updated_at                 TEXT    NOT NULL,
    deleted_at                 TEXT,
    signature                  TEXT    NOT NULL DEFAULT 'hmac',
    client_identity            BYTEA
);

CREATE TABLE endpoint_subscriptions (
    event_type  TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    PRIMARY KEY (event_type, endpoint_id)
);

-- Deliveries are inserted under the append lock too, so their ids also grow
-- in commit order: a process following `id > last seen` misses none.
CREATE SEQUENCE delivery_ids;
CREATE TABLE deliveries (
    id               BIGINT  PRIMARY KEY,
    endpoint_id      TEXT    NOT NULL,
    event_sequence   BIGINT  NOT NULL,
    event_id         TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    record_key       TEXT,
    status           TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    last_attempt_at  TEXT,
    last_http_status BIGINT,
    last_error       TEXT,
    failure_reason   TEXT,
    created_at       TEXT    NOT NULL,
    completed_at     TEXT,
    UNIQUE (endpoint_id, event_sequence)
);
CREATE INDEX deliveries_by_status ON deliveries (status, id);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_pending ON deliveries (endpoint_id, id) WHERE status = 'pending';

CREATE TABLE delivery_attempts (
    id               BIGSERIAL PRIMARY KEY,
    delivery_id      BIGINT    NOT NULL,
    attempted_at     TEXT      NOT NULL,
    duration_ms      DOUBLE PRECISION NOT NULL,
    http_status      BIGINT,
    error_kind       TEXT,
    response_snippet TEXT
);
CREATE INDEX attempts_by_delivery ON delivery_attempts (delivery_id, id);

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TEXT NOT NULL,
    actor_type  TEXT NOT NULL,
    actor_id    TEXT,
    action      TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    source_ip   TEXT,
    detail      TEXT
);
CREATE INDEX audit_by_action ON audit_log (action, id);
CREATE INDEX audit_by_time ON audit_log (at);

CREATE TABLE secret_meta (
    name  TEXT  PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Scale-out: every `chartwire serve` process registers here and renews its
-- row; a process whose row is older than the lease time is considered gone.
CREATE TABLE dispatch_processes (
    id      TEXT        PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL
);

-- Each endpoint is sent to by one process at a time: the holder of its
-- lease. The holder renews the lease; when it stops renewing (crash, lost
-- database), the lease expires and another process takes the endpoint over
-- and loads its pending deliveries.
CREATE TABLE endpoint_leases (
    endpoint_id TEXT        PRIMARY KEY,
    owner       TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
