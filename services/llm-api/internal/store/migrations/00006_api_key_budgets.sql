-- An API key's own budget and models (POST /auth/api-keys "budget",
-- "models"): within its owner's budget and models when created, copied to
-- the key that rotates it. NULL: no limit in that window / the owner's
-- models. Mirrored to Redis like the overrides (00005); the partial index
-- serves the sync, which reads every key that has either.

-- +goose Up
ALTER TABLE api_keys
    ADD COLUMN budget_tokens_per_minute  bigint,
    ADD COLUMN budget_tokens_per_day     bigint,
    ADD COLUMN budget_tokens_per_month   bigint,
    ADD COLUMN budget_nano_usd_per_day   bigint,
    ADD COLUMN budget_nano_usd_per_month bigint,
    ADD COLUMN models                    text[];
ALTER TABLE api_keys ADD CONSTRAINT api_keys_budget_positive CHECK (coalesce(budget_tokens_per_minute, 1) > 0
    AND coalesce(budget_tokens_per_day, 1) > 0 AND coalesce(budget_tokens_per_month, 1) > 0
    AND coalesce(budget_nano_usd_per_day, 1) > 0 AND coalesce(budget_nano_usd_per_month, 1) > 0);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_models CHECK (models IS NULL OR cardinality(models) BETWEEN 1 AND 256);
CREATE INDEX api_keys_budgeted ON api_keys (expires_at)
    WHERE budget_tokens_per_minute IS NOT NULL OR budget_tokens_per_day IS NOT NULL OR budget_tokens_per_month IS NOT NULL
       OR budget_nano_usd_per_day IS NOT NULL OR budget_nano_usd_per_month IS NOT NULL OR models IS NOT NULL;

-- +goose Down
DROP INDEX api_keys_budgeted;
ALTER TABLE api_keys DROP CONSTRAINT api_keys_models, DROP CONSTRAINT api_keys_budget_positive,
    DROP COLUMN budget_tokens_per_minute, DROP COLUMN budget_tokens_per_day, DROP COLUMN budget_tokens_per_month,
    DROP COLUMN budget_nano_usd_per_day, DROP COLUMN budget_nano_usd_per_month, DROP COLUMN models;
