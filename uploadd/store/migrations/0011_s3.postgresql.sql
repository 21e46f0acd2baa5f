-- PostgreSQL spelling of 0011_s3.sql: 64-bit ids and sizes, double
-- precision times, and byte-order ("C") collation on names and keys, so
-- objects list in the byte order of their UTF-8 as S3 lists them, and as
-- SQLite does, whatever the database's locale.
CREATE TABLE buckets (
    name TEXT COLLATE "C" PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at DOUBLE PRECISION NOT NULL,
    cors TEXT
);

CREATE INDEX buckets_owner ON buckets(owner_id, name);

CREATE TABLE objects (
    bucket TEXT COLLATE "C" NOT NULL REFERENCES buckets(name) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    file_id TEXT COLLATE "C" NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    metadata TEXT NOT NULL DEFAULT '{}',
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (bucket, key)
);

CREATE INDEX objects_file ON objects(file_id);

CREATE TABLE access_keys (
    key_id TEXT COLLATE "C" PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);

CREATE INDEX access_keys_user ON access_keys(user_id, created_at);

CREATE TABLE multipart_parts (
    upload_id TEXT COLLATE "C" NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    part_upload_id TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
