-- +goose Up
-- Virtual keys (internal/keys), named as LiteLLM's LiteLLM_VerificationToken
-- so its rows can be imported. token is the hex SHA-256 of the secret; the
-- secret itself is stored nowhere. NULL means none: no alias, user, team,
-- expiry, budget or limit. models is a JSON array; metadata,
-- model_rpm_limit and model_tpm_limit are JSON objects. Timestamps are UTC
-- text of fixed width, like the other tables'.
CREATE TABLE keys (
    token                 TEXT PRIMARY KEY,
    key_name              TEXT NOT NULL,
    key_alias             TEXT,
    user_id               TEXT,
    team_id               TEXT,
    models                TEXT NOT NULL DEFAULT '[]',
    metadata              TEXT NOT NULL DEFAULT '{}',
    blocked               INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
    expires               TEXT,
    max_budget            REAL,
    budget_duration       TEXT,
    budget_reset_at       TEXT,
    spend                 REAL NOT NULL DEFAULT 0,
    tpm_limit             INTEGER,
    rpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    model_rpm_limit       TEXT NOT NULL DEFAULT '{}',
    model_tpm_limit       TEXT NOT NULL DEFAULT '{}',
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);
-- An alias names one key; any number of keys have none.
CREATE UNIQUE INDEX keys_key_alias ON keys (key_alias) WHERE key_alias IS NOT NULL;
-- Paging, oldest first.
CREATE INDEX keys_created_at_token ON keys (created_at, token);

-- +goose Down
DROP TABLE keys;
