-- The fields pkg/audit's emitter replaced because their value was
-- unacceptable (a credential-shaped request id, an identifier outside its
-- rule, …): the stream's san field, comma-separated names in canonical
-- order ('' for most events). The event was kept, flagged, instead of being
-- dropped whole.

-- +goose Up
ALTER TABLE audit_events ADD COLUMN sanitized text NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD CONSTRAINT audit_events_sanitized_format
    CHECK (sanitized ~ '^([a-z_.]{1,16}(,[a-z_.]{1,16}){0,15})?$');

-- +goose Down
ALTER TABLE audit_events DROP COLUMN sanitized;
