-- PostgreSQL spelling of 0005_webhooks.sql: 64-bit ids, double precision times.
CREATE TABLE webhooks (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE deliveries (
    id TEXT COLLATE "C" PRIMARY KEY,
    webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id BIGINT NOT NULL,
    topic TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    delivered INTEGER NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE INDEX deliveries_webhook ON deliveries(webhook_id, updated_at DESC);
