-- +goose Up
-- Daily usage per UTC day, key and model: LiteLLM's LiteLLM_DailyUserSpend
-- and LiteLLM_DailyTeamSpend rows in one table (user_id and team_id are
-- columns). date is YYYY-MM-DD (UTC); api_key is the key's token, the
-- master key's requests counted under its own hash. key_alias, team_id
-- and user_id are the key's when it was last used, so a deleted key's rows
-- still name it. model is the deployment's model, model_group the name the
-- client asked for. A spend flush adds to a row (ON CONFLICT DO UPDATE).
-- Timestamps are UTC text of fixed width, like the other tables'.
CREATE TABLE daily_spend (
    date                TEXT NOT NULL,
    api_key             TEXT NOT NULL,
    model               TEXT NOT NULL,
    model_group         TEXT NOT NULL,
    custom_llm_provider TEXT NOT NULL DEFAULT '',
    endpoint            TEXT NOT NULL DEFAULT '',
    key_alias           TEXT,
    team_id             TEXT,
    user_id             TEXT,
    prompt_tokens       INTEGER NOT NULL DEFAULT 0,
    completion_tokens   INTEGER NOT NULL DEFAULT 0,
    spend               REAL NOT NULL DEFAULT 0,
    api_requests        INTEGER NOT NULL DEFAULT 0,
    successful_requests INTEGER NOT NULL DEFAULT 0,
    failed_requests     INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (date, api_key, model, model_group, custom_llm_provider, endpoint)
);
-- /team/daily/activity and /user/daily/activity filter by their entity.
CREATE INDEX daily_spend_team_id_date ON daily_spend (team_id, date);
CREATE INDEX daily_spend_user_id_date ON daily_spend (user_id, date);

-- +goose Down
DROP TABLE daily_spend;
