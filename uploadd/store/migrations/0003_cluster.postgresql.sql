-- PostgreSQL spelling of 0003_cluster.sql: 64-bit sizes, double precision times.
CREATE TABLE nodes (
    id TEXT COLLATE "C" PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    mode TEXT NOT NULL DEFAULT 'active',
    added_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE replicas (
    file_id TEXT COLLATE "C" NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    node_id TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    verified_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (file_id, node_id)
);

CREATE INDEX replicas_node ON replicas(node_id);
