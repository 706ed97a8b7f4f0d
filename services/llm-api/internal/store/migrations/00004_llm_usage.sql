-- The usage ledger (package ledger): one row per settled or swept budget
-- reservation. reservation_id is server-generated (never the client's
-- request id): the writer inserts with ON CONFLICT DO NOTHING, so a retried
-- batch is stored once. Costs are exact integers of nano-USD.

-- +goose Up
CREATE TABLE llm_usage (
    reservation_id    text        PRIMARY KEY,
    subject           text        NOT NULL,
    key_id            text        NOT NULL DEFAULT '',
    model             text        NOT NULL,
    day               date        NOT NULL,
    prompt_tokens     bigint      NOT NULL,
    completion_tokens bigint      NOT NULL,
    tokens            bigint      NOT NULL,
    nano_usd          bigint      NOT NULL,
    reserved_tokens   bigint      NOT NULL,
    overshoot_tokens  bigint      NOT NULL DEFAULT 0,
    status            text        NOT NULL,
    settled_at        timestamptz NOT NULL,
    CONSTRAINT llm_usage_id_format CHECK (reservation_id ~ '^[0-9a-f]{32}$'),
    CONSTRAINT llm_usage_subject_len CHECK (char_length(subject) BETWEEN 1 AND 255),
    CONSTRAINT llm_usage_model_len CHECK (char_length(model) BETWEEN 1 AND 128),
    CONSTRAINT llm_usage_non_negative CHECK (prompt_tokens >= 0 AND completion_tokens >= 0 AND tokens >= 0
        AND nano_usd >= 0 AND reserved_tokens >= 0 AND overshoot_tokens >= 0),
    CONSTRAINT llm_usage_status CHECK (status IN ('settled', 'aborted', 'no_usage', 'failed', 'refused', 'swept', 'unmetered'))
);
CREATE INDEX llm_usage_subject_day ON llm_usage (subject, day);
CREATE INDEX llm_usage_day ON llm_usage (day);

-- +goose Down
DROP TABLE llm_usage;
