-- PostgreSQL spelling of 0009_instances.sql: double precision times.
CREATE TABLE instances (
    name TEXT COLLATE "C" PRIMARY KEY,
    url TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    retired_at DOUBLE PRECISION
);

ALTER TABLE uploads ADD COLUMN holder TEXT COLLATE "C" NOT NULL DEFAULT '';

CREATE INDEX uploads_holder ON uploads(holder, state);
