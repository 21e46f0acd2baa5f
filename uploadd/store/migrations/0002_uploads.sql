CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    protocol TEXT NOT NULL,
    length INTEGER,
    received INTEGER NOT NULL DEFAULT 0,
    ranges TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{}',
    concat TEXT,
    parts TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    expires_at REAL,
    state TEXT NOT NULL,
    file_id TEXT,
    base INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX uploads_expiry ON uploads(state, expires_at);
