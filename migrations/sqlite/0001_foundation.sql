-- Records of every type share one table: the body is the record exactly as
-- the API returns it; the columns beside it exist for lookups and checks.
CREATE TABLE records (
    id          INTEGER PRIMARY KEY,
    record_type TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    patient_id  INTEGER,
    body        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    deleted_at  TEXT
);
CREATE INDEX records_by_type ON records (record_type, id);
CREATE INDEX records_by_patient ON records (record_type, patient_id, id);

-- The event log. AUTOINCREMENT keeps sequences strictly increasing even after
-- the newest events have been pruned; the single writer assigns them in
-- commit order, so a reader of `sequence > cursor` never skips one.
CREATE TABLE events (
    sequence        INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    event_type      TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    payload_version INTEGER NOT NULL,
    occurred_at     TEXT    NOT NULL,
    actor_type      TEXT    NOT NULL,
    actor_id        TEXT,
    record_type     TEXT,
    record_id       INTEGER,
    data            TEXT    NOT NULL
);
CREATE INDEX events_by_time ON events (occurred_at);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

-- Small named values the store keeps for itself (e.g. how far events were pruned).
CREATE TABLE store_meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
