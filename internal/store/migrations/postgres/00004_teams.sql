-- +goose Up
-- Teams (internal/keys), named as LiteLLM's LiteLLM_TeamTable so its rows
-- can be imported. NULL means none: no alias, budget or limit. team_alias
-- is not unique, as in LiteLLM. models (LiteLLM's is TEXT[]) and
-- members_with_roles are JSON arrays, metadata a JSON object (json, not
-- jsonb, so the text is kept as written).
CREATE TABLE teams (
    team_id               TEXT PRIMARY KEY,
    team_alias            TEXT,
    models                JSON NOT NULL DEFAULT '[]',
    metadata              JSON NOT NULL DEFAULT '{}',
    blocked               BOOLEAN NOT NULL DEFAULT FALSE,
    members_with_roles    JSON NOT NULL DEFAULT '[]',
    max_budget            DOUBLE PRECISION,
    budget_duration       TEXT,
    budget_reset_at       TIMESTAMPTZ,
    spend                 DOUBLE PRECISION NOT NULL DEFAULT 0,
    tpm_limit             BIGINT,
    rpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);
-- Paging, oldest first.
CREATE INDEX teams_created_at_team_id ON teams (created_at, team_id);
-- A team's keys: deleted with it, listed with it.
CREATE INDEX keys_team_id ON keys (team_id);

-- +goose Down
DROP INDEX keys_team_id;
DROP TABLE teams;
