-- Administrators' budget overrides of single users (PUT
-- /v1/admin/budgets/users/{subject}): they replace the budgets of the
-- user's roles (a NULL window: no limit in it) and, when models is not
-- NULL, the models the roles allow. PostgreSQL is the record; Redis holds
-- the copy every reservation reads (package entitlement writes it on each
-- change and again every few minutes). A removed override stays as a
-- tombstone (removed_at) for a day, so the sync also removes a copy a
-- failed or raced Redis write left behind. Costs are exact nano-USD.

-- +goose Up
CREATE TABLE llm_budget_overrides (
    subject            text        PRIMARY KEY,
    tokens_per_minute  bigint,
    tokens_per_day     bigint,
    tokens_per_month   bigint,
    nano_usd_per_day   bigint,
    nano_usd_per_month bigint,
    models             text[],
    updated_at         timestamptz NOT NULL,
    updated_by         text        NOT NULL,
    removed_at         timestamptz,
    CONSTRAINT llm_budget_overrides_subject_len CHECK (char_length(subject) BETWEEN 1 AND 128),
    CONSTRAINT llm_budget_overrides_positive CHECK (coalesce(tokens_per_minute, 1) > 0 AND coalesce(tokens_per_day, 1) > 0
        AND coalesce(tokens_per_month, 1) > 0 AND coalesce(nano_usd_per_day, 1) > 0 AND coalesce(nano_usd_per_month, 1) > 0),
    CONSTRAINT llm_budget_overrides_models CHECK (models IS NULL OR cardinality(models) BETWEEN 1 AND 256)
);

-- +goose Down
DROP TABLE llm_budget_overrides;
