-- Buckets of objects, the access keys that sign requests for them, and the
-- parts of multipart uploads (the S3 API). Keys and names compare byte by
-- byte (BINARY, SQLite's default, named here): S3 lists keys in the byte
-- order of their UTF-8.
CREATE TABLE buckets (
    name TEXT COLLATE BINARY PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    cors TEXT
);

CREATE INDEX buckets_owner ON buckets(owner_id, name);

-- An object is the newest file stored under its key, and goes with it. The
-- primary key is the index listings walk: one bucket, keys in order.
CREATE TABLE objects (
    bucket TEXT COLLATE BINARY NOT NULL REFERENCES buckets(name) ON DELETE CASCADE,
    key TEXT COLLATE BINARY NOT NULL,
    file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    metadata TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL,
    PRIMARY KEY (bucket, key)
);

CREATE INDEX objects_file ON objects(file_id);

-- The secret is sealed with a key derived from the server's secret: the
-- database alone does not reveal it.
CREATE TABLE access_keys (
    key_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);

CREATE INDEX access_keys_user ON access_keys(user_id, created_at);

-- Each part's bytes are a complete partial upload of their own
-- (part_upload_id), which the multipart upload joins when completed.
CREATE TABLE multipart_parts (
    upload_id TEXT NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    part_upload_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    checksum_algorithm TEXT,
    checksum TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
