-- API keys of llm-api users. The secret is never stored: hmac is
-- HMAC-SHA-256(pepper pepper_id, whole key). kid is public (logged, listed,
-- sent upstream); last4 is shown to the owner next to it.

-- +goose Up
CREATE TABLE api_keys (
    id                      uuid        PRIMARY KEY,
    kid                     text        NOT NULL,
    hmac                    bytea       NOT NULL,
    pepper_id               text        NOT NULL,
    owner_subject           text        NOT NULL,
    name                    text        NOT NULL,
    roles                   text[]      NOT NULL DEFAULT '{}',
    last4                   text        NOT NULL,
    created_at              timestamptz NOT NULL,
    expires_at              timestamptz,
    -- revoked_at may lie in the future: the end of a rotation's grace period.
    revoked_at              timestamptz,
    last_used_at            timestamptz,
    replaced_by             uuid        REFERENCES api_keys (id),
    -- when the revocation was announced on the Redis channel.
    revocation_published_at timestamptz,
    CONSTRAINT api_keys_kid_key UNIQUE (kid),
    CONSTRAINT api_keys_kid_format CHECK (kid ~ '^[0-9A-Za-z]{8}$'),
    CONSTRAINT api_keys_hmac_len CHECK (octet_length(hmac) = 32),
    CONSTRAINT api_keys_name_len CHECK (char_length(name) BETWEEN 1 AND 64)
);

-- Names are unique per owner among keys that are not revoked (a rotated key
-- in its grace period has revoked_at set and leaves the name to its
-- successor).
CREATE UNIQUE INDEX api_keys_owner_name_active ON api_keys (owner_subject, name) WHERE revoked_at IS NULL;
CREATE INDEX api_keys_owner_created ON api_keys (owner_subject, created_at DESC);
-- Revocations not yet announced to the edge (the sweeper polls this).
CREATE INDEX api_keys_revocation_pending ON api_keys (revoked_at)
    WHERE revoked_at IS NOT NULL AND revocation_published_at IS NULL;

-- +goose Down
DROP TABLE api_keys;
