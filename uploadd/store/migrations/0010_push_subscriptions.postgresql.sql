-- PostgreSQL spelling of 0010_push_subscriptions.sql: 64-bit ids, double
-- precision times.
CREATE TABLE push_subscriptions (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint TEXT NOT NULL UNIQUE,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE INDEX push_subscriptions_owner ON push_subscriptions(owner_id, created_at);
