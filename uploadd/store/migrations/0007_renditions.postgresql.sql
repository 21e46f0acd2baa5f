-- PostgreSQL spelling of 0007_renditions.sql: double precision times, and an
-- explicit rowid (SQLite's is implicit) that orders renditions made at the
-- same time in the order they were added.
ALTER TABLE files ADD COLUMN rendition_of TEXT COLLATE "C" REFERENCES files(id) ON DELETE CASCADE;

CREATE INDEX files_rendition_of ON files(rendition_of);

CREATE TABLE renditions (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    source_id TEXT COLLATE "C" NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    profile TEXT COLLATE "C" NOT NULL,
    state TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    percent DOUBLE PRECISION NOT NULL DEFAULT 0,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '',
    started_at DOUBLE PRECISION,
    PRIMARY KEY (source_id, profile)
);
