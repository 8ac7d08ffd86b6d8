-- +goose Up
-- Virtual keys (internal/keys), named as LiteLLM's LiteLLM_VerificationToken
-- so its rows can be imported. token is the hex SHA-256 of the secret; the
-- secret itself is stored nowhere. NULL means none: no alias, user, team,
-- expiry, budget or limit. models is a JSON array (LiteLLM's is TEXT[]);
-- metadata, model_rpm_limit and model_tpm_limit are JSON objects (json, not
-- jsonb, so the text is kept as written).
CREATE TABLE keys (
    token                 TEXT PRIMARY KEY,
    key_name              TEXT NOT NULL,
    key_alias             TEXT,
    user_id               TEXT,
    team_id               TEXT,
    models                JSON NOT NULL DEFAULT '[]',
    metadata              JSON NOT NULL DEFAULT '{}',
    blocked               BOOLEAN NOT NULL DEFAULT FALSE,
    expires               TIMESTAMPTZ,
    max_budget            DOUBLE PRECISION,
    budget_duration       TEXT,
    budget_reset_at       TIMESTAMPTZ,
    spend                 DOUBLE PRECISION NOT NULL DEFAULT 0,
    tpm_limit             BIGINT,
    rpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    model_rpm_limit       JSON NOT NULL DEFAULT '{}',
    model_tpm_limit       JSON NOT NULL DEFAULT '{}',
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);
-- An alias names one key; any number of keys have none.
CREATE UNIQUE INDEX keys_key_alias ON keys (key_alias) WHERE key_alias IS NOT NULL;
-- Paging, oldest first.
CREATE INDEX keys_created_at_token ON keys (created_at, token);

-- +goose Down
DROP TABLE keys;
