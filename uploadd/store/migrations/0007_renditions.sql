ALTER TABLE files ADD COLUMN rendition_of TEXT REFERENCES files(id) ON DELETE CASCADE;

CREATE INDEX files_rendition_of ON files(rendition_of);

CREATE TABLE renditions (
    source_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    profile TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    percent REAL NOT NULL DEFAULT 0,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '',
    started_at REAL,
    PRIMARY KEY (source_id, profile)
);
