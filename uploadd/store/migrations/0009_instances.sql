-- The uploadd instances sharing this database, and which of them holds each
-- unfinished upload's bytes ('' for uploads of a single-instance install).
CREATE TABLE instances (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    started_at REAL NOT NULL,
    retired_at REAL
);

ALTER TABLE uploads ADD COLUMN holder TEXT NOT NULL DEFAULT '';

CREATE INDEX uploads_holder ON uploads(holder, state);
