CREATE TABLE shares (
    id TEXT PRIMARY KEY,
    file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    created_at REAL NOT NULL
);

CREATE INDEX shares_file ON shares(file_id, created_at);
