-- +goose Up
-- One row the gateway rewrites now and then (Store.Heartbeat), so readiness
-- knows whether the database still takes writes while nobody changes
-- anything. beat_at is UTC text like the other timestamps.
CREATE TABLE heartbeat (
    id      INTEGER PRIMARY KEY,
    beat_at TEXT NOT NULL
);

-- +goose Down
DROP TABLE heartbeat;
