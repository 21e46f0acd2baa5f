-- PostgreSQL spelling of 0008_shares.sql: double precision times.
CREATE TABLE shares (
    id TEXT COLLATE "C" PRIMARY KEY,
    file_id TEXT COLLATE "C" NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE INDEX shares_file ON shares(file_id, created_at);
