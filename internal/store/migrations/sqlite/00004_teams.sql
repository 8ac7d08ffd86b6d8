-- +goose Up
-- Teams (internal/keys), named as LiteLLM's LiteLLM_TeamTable so its rows
-- can be imported. NULL means none: no alias, budget or limit. team_alias
-- is not unique, as in LiteLLM. models and members_with_roles are JSON
-- arrays, metadata a JSON object. Timestamps are UTC text of fixed width,
-- like the other tables'.
CREATE TABLE teams (
    team_id               TEXT NOT NULL PRIMARY KEY,
    team_alias            TEXT,
    models                TEXT NOT NULL DEFAULT '[]',
    metadata              TEXT NOT NULL DEFAULT '{}',
    blocked               INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
    members_with_roles    TEXT NOT NULL DEFAULT '[]',
    max_budget            REAL,
    budget_duration       TEXT,
    budget_reset_at       TEXT,
    spend                 REAL NOT NULL DEFAULT 0,
    tpm_limit             INTEGER,
    rpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);
-- Paging, oldest first.
CREATE INDEX teams_created_at_team_id ON teams (created_at, team_id);
-- A team's keys: deleted with it, listed with it.
CREATE INDEX keys_team_id ON keys (team_id);

-- +goose Down
DROP INDEX keys_team_id;
DROP TABLE teams;
