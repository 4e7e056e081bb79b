-- Append-only audit log: who did what to which row, with before and after.

CREATE TABLE audit_log (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid REFERENCES tenants (id),
    actor_kind      text NOT NULL,
    actor_id        uuid,
    action          text NOT NULL,
    entity_type     text NOT NULL,
    entity_id       uuid,
    before          jsonb,
    after           jsonb,
    reason          text,
    ip              inet,
    request_id      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_log_actor_kind_check CHECK (actor_kind IN ('system', 'cli', 'user', 'api_token', 'worker', 'contact')),
    CONSTRAINT audit_log_action_check CHECK (action ~ '^[a-z_]+(\.[a-z_]+)*$')
);
CREATE INDEX audit_log_tenant_entity_idx ON audit_log (tenant_id, entity_type, entity_id, created_at);
CREATE INDEX audit_log_tenant_time_idx ON audit_log (tenant_id, created_at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
