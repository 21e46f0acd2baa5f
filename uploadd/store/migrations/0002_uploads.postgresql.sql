-- PostgreSQL spelling of 0002_uploads.sql: 64-bit offsets, double precision times.
CREATE TABLE uploads (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    protocol TEXT NOT NULL,
    length BIGINT,
    received BIGINT NOT NULL DEFAULT 0,
    ranges TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{}',
    concat TEXT,
    parts TEXT NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    state TEXT NOT NULL,
    file_id TEXT,
    base BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX uploads_expiry ON uploads(state, expires_at);
