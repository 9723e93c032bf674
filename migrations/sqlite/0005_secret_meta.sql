-- Values the secrets layer keeps about itself, e.g. a check value sealed
-- under the master key, so a server given the wrong key refuses to start.
CREATE TABLE secret_meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
