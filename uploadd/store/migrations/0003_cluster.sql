CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    mode TEXT NOT NULL DEFAULT 'active',
    added_at REAL NOT NULL
);

CREATE TABLE replicas (
    file_id TEXT NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    verified_at REAL NOT NULL,
    PRIMARY KEY (file_id, node_id)
);

CREATE INDEX replicas_node ON replicas(node_id);
