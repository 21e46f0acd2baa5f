-- Browsers' Web Push subscriptions: where a user's notifications go. One
-- endpoint is one browser, so it is unique across users.
CREATE TABLE push_subscriptions (
    id TEXT PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint TEXT NOT NULL UNIQUE,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE INDEX push_subscriptions_owner ON push_subscriptions(owner_id, created_at);
