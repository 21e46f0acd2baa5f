CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    md5 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at REAL NOT NULL,
    parent TEXT REFERENCES files(id) ON DELETE SET NULL
);

CREATE INDEX files_owner_created ON files(owner_id, created_at DESC);
CREATE INDEX files_parent ON files(parent);
