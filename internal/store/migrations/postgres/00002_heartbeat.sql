-- +goose Up
-- One row every replica rewrites now and then (Store.Heartbeat), so
-- readiness knows whether the database still takes writes while nobody
-- changes anything.
CREATE TABLE heartbeat (
    id      INTEGER PRIMARY KEY,
    beat_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE heartbeat;
