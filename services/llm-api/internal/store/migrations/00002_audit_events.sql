-- Audit events consumed from the Redis stream (pkg/audit). stream_id is the
-- entry's Redis Stream id: the consumer inserts with ON CONFLICT DO NOTHING,
-- so a redelivered entry (at-least-once) is stored once. seq orders pages.
-- Every column holds a value pkg/audit validated (identifiers, enums).

-- +goose Up
CREATE TABLE audit_events (
    seq         bigserial   PRIMARY KEY,
    stream_id   text        NOT NULL,
    ts          timestamptz NOT NULL,
    request_id  text        NOT NULL DEFAULT '',
    subject     text        NOT NULL DEFAULT '',
    key_id      text        NOT NULL DEFAULT '',
    client_ip   text        NOT NULL DEFAULT '',
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    outcome     text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    severity    text        NOT NULL,
    source      text        NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_events_stream_id_key UNIQUE (stream_id),
    CONSTRAINT audit_events_stream_id_format CHECK (stream_id ~ '^[0-9]{1,20}-[0-9]{1,20}$'),
    CONSTRAINT audit_events_severity CHECK (severity IN ('info', 'warning', 'critical')),
    CONSTRAINT audit_events_outcome CHECK (outcome IN ('success', 'denied', 'failure'))
);
CREATE INDEX audit_events_ts ON audit_events (ts);
CREATE INDEX audit_events_action_seq ON audit_events (action, seq);
CREATE INDEX audit_events_subject_seq ON audit_events (subject, seq);
CREATE INDEX audit_events_key_id_seq ON audit_events (key_id, seq) WHERE key_id <> '';

-- +goose Down
DROP TABLE audit_events;
