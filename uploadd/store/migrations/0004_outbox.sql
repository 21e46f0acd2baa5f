CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    owner_id INTEGER,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL
);

CREATE INDEX events_pending ON events(sent_at, id);
