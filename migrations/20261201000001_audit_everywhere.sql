-- Every change to a tenant's records leaves one audit row, whichever door it came through, and
-- the rows of each tenant form a hash chain so that editing, deleting or reordering one shows.
--
-- Why a trigger: the 70-odd places that open a transaction cannot each be trusted to remember an
-- audit call, but every one of them writes through these tables. The application only says who
-- is acting (`audit::act_as`: transaction-local settings fieldline.actor_kind, actor_id,
-- request_id, ip, reason); the trigger writes the row, in the same transaction, with the fields
-- that changed. A test database runs with fieldline.audit_strict = on, where a change with no
-- actor is refused, so a door that forgets to say who it is fails its tests.

ALTER TABLE audit_log
    DROP CONSTRAINT audit_log_actor_kind_check,
    ADD CONSTRAINT audit_log_actor_kind_check
        CHECK (actor_kind IN ('system', 'cli', 'user', 'api_token', 'worker', 'contact', 'unknown')),
    -- Position in the tenant's chain; the hash covers the row's content and the previous hash.
    ADD COLUMN seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN hash bytea,
    -- SHA-256 of before, after and reason: erasure may blank those three (they can hold a
    -- patient's name) and the chain still verifies, because it covers this hash, not the values.
    ADD COLUMN payload_hash bytea,
    -- The data request whose erasure blanked before/after/reason, if one did.
    ADD COLUMN redacted_by uuid;

-- The chain of rows with no tenant (platform-level changes) is keyed by the nil uuid.
CREATE FUNCTION audit_chain_of(tenant uuid) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(tenant, '00000000-0000-0000-0000-000000000000'::uuid) $$;

CREATE TABLE audit_chain_heads (
    chain_id    uuid PRIMARY KEY,
    seq         bigint NOT NULL,
    hash        bytea NOT NULL
);

-- The head of every chain, recorded now and then by a job: rows cut off the end of a chain
-- (which leave a shorter chain that still links up) no longer reach a recorded head.
CREATE TABLE audit_checkpoints (
    id          uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    chain_id    uuid NOT NULL,
    seq         bigint NOT NULL,
    hash        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_checkpoints_chain_seq_key UNIQUE (chain_id, seq)
);

CREATE FUNCTION audit_payload_hash(before jsonb, after jsonb, reason text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(convert_to(
        coalesce(before::text, '') || E'\x1f' || coalesce(after::text, '') || E'\x1f' || coalesce(reason, ''),
        'UTF8'))
$$;

-- What the chain hash covers, in a fixed text form (times as integer microseconds, so the
-- session's time zone and date style do not matter).
CREATE FUNCTION audit_content(a audit_log) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT concat_ws(E'\x1f',
        a.seq::text, a.id::text, coalesce(a.tenant_id::text, ''),
        (extract(epoch FROM a.created_at) * 1000000)::bigint::text,
        a.actor_kind, coalesce(a.actor_id::text, ''), a.action, a.entity_type,
        coalesce(a.entity_id::text, ''), coalesce(host(a.ip), ''), coalesce(a.request_id, ''),
        encode(a.payload_hash, 'hex'))
$$;

DROP TRIGGER audit_log_append_only ON audit_log;
DROP FUNCTION audit_log_is_append_only();

-- The rows written before the chain existed join it, oldest first.
UPDATE audit_log SET payload_hash = audit_payload_hash(before, after, reason);
DO $$
DECLARE
    r audit_log;
    head_seq bigint;
    head_hash bytea;
BEGIN
    FOR r IN SELECT * FROM audit_log ORDER BY audit_chain_of(tenant_id), created_at, id LOOP
        SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_heads WHERE chain_id = audit_chain_of(r.tenant_id);
        IF NOT FOUND THEN
            head_seq := 0;
            head_hash := sha256(''::bytea);
            INSERT INTO audit_chain_heads VALUES (audit_chain_of(r.tenant_id), 0, head_hash);
        END IF;
        r.seq := head_seq + 1;
        r.prev_hash := head_hash;
        r.hash := sha256(head_hash || convert_to(audit_content(r), 'UTF8'));
        UPDATE audit_log SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;
        UPDATE audit_chain_heads SET seq = r.seq, hash = r.hash WHERE chain_id = audit_chain_of(r.tenant_id);
    END LOOP;
END
$$;

-- Who is acting, from the settings of the transaction, for rows written without one.
CREATE FUNCTION audit_log_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.request_id := coalesce(NEW.request_id, nullif(current_setting('fieldline.request_id', true), ''));
    NEW.ip := coalesce(NEW.ip, nullif(current_setting('fieldline.ip', true), '')::inet);
    NEW.reason := coalesce(NEW.reason, nullif(current_setting('fieldline.reason', true), ''));
    NEW.payload_hash := audit_payload_hash(NEW.before, NEW.after, NEW.reason);
    NEW.seq := NULL;
    NEW.prev_hash := NULL;
    NEW.hash := NULL;
    NEW.redacted_by := NULL;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_stamp BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_stamp();

-- Links the transaction's new rows into their chain at commit. Deferred, so the chain head is
-- locked only for the moment of commit, after every other lock the transaction takes: two
-- transactions cannot deadlock over it, and the chain's order is the order of commits.
CREATE FUNCTION audit_log_seal() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    chain uuid := audit_chain_of(NEW.tenant_id);
    head_seq bigint;
    head_hash bytea;
    r audit_log;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id AND hash IS NULL) THEN
        RETURN NULL; -- sealed already, with the rest of its transaction's rows
    END IF;
    INSERT INTO audit_chain_heads (chain_id, seq, hash) VALUES (chain, 0, sha256(''::bytea))
        ON CONFLICT (chain_id) DO NOTHING;
    SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_heads WHERE chain_id = chain FOR UPDATE;
    FOR r IN SELECT * FROM audit_log
              WHERE audit_chain_of(tenant_id) = chain AND hash IS NULL
              ORDER BY created_at, id
    LOOP
        r.seq := head_seq + 1;
        r.prev_hash := head_hash;
        r.hash := sha256(head_hash || convert_to(audit_content(r), 'UTF8'));
        UPDATE audit_log SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;
        head_seq := r.seq;
        head_hash := r.hash;
    END LOOP;
    UPDATE audit_chain_heads SET seq = head_seq, hash = head_hash WHERE chain_id = chain;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER audit_log_seal AFTER INSERT ON audit_log
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_log_seal();
CREATE INDEX audit_log_unsealed_idx ON audit_log (audit_chain_of(tenant_id)) WHERE hash IS NULL;
CREATE UNIQUE INDEX audit_log_chain_seq_key ON audit_log (audit_chain_of(tenant_id), seq);

-- Append-only, with two exceptions that keep the chain verifiable: sealing fills seq and hashes
-- once, and an erasure (fieldline.erasure set to its request) blanks before, after and reason.
CREATE FUNCTION audit_log_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    erasure text := nullif(current_setting('fieldline.erasure', true), '');
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.hash IS NULL AND NEW.hash IS NOT NULL
           AND (to_jsonb(NEW) - '{seq,prev_hash,hash}'::text[]) = (to_jsonb(OLD) - '{seq,prev_hash,hash}'::text[]) THEN
            RETURN NEW;
        END IF;
        IF erasure IS NOT NULL AND NEW.redacted_by = erasure::uuid
           AND (to_jsonb(NEW) - '{before,after,reason,redacted_by}'::text[]) = (to_jsonb(OLD) - '{before,after,reason,redacted_by}'::text[]) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();

-- Columns never copied into the log: secrets, bookkeeping that changes on every use, and
-- mirrors of other rows (a work order's copy of its dispatch message's delivery status); a
-- change to nothing else writes no row.
CREATE FUNCTION audit_unlogged_columns() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['updated_at', 'password_hash', 'token_hash', 'code_hash', 'csrf_token', 'token',
                 'secret_body', 'last_used_at', 'last_sign_in_at', 'last_seen_at',
                 'current_latitude', 'current_longitude', 'current_accuracy_m', 'position_reported_at',
                 'whatsapp_status']
$$;

-- One audit row per changed row of an audited table: the changed fields before and after.
CREATE FUNCTION audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) - audit_unlogged_columns() END;
    new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) - audit_unlogged_columns() END;
    whole jsonb := coalesce(new_row, old_row);
    before_fields jsonb;
    after_fields jsonb;
    actor_kind text := nullif(current_setting('fieldline.actor_kind', true), '');
    erasure text := nullif(current_setting('fieldline.erasure', true), '');
    verb text := lower(TG_OP);
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(o.key, o.value), jsonb_object_agg(o.key, new_row -> o.key)
          INTO before_fields, after_fields
          FROM jsonb_each(old_row) o
         WHERE new_row -> o.key IS DISTINCT FROM o.value;
        IF before_fields IS NULL THEN
            RETURN NULL;
        END IF;
        IF new_row ? 'deleted_at' AND (old_row ->> 'deleted_at') IS NULL AND (new_row ->> 'deleted_at') IS NOT NULL THEN
            verb := 'delete';
        END IF;
    ELSIF TG_OP = 'INSERT' THEN
        after_fields := jsonb_strip_nulls(new_row);
    ELSE
        before_fields := jsonb_strip_nulls(old_row);
    END IF;
    IF erasure IS NOT NULL THEN
        -- The log says which fields an erasure changed, never what they held.
        after_fields := jsonb_build_object('fields', (SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(coalesce(before_fields, after_fields)) k));
        before_fields := NULL;
        verb := 'erase';
    END IF;
    IF actor_kind IS NULL AND current_setting('fieldline.audit_strict', true) = 'on' THEN
        RAISE EXCEPTION 'no actor for a change to % (call audit::act_as in this transaction)', TG_TABLE_NAME;
    END IF;
    INSERT INTO audit_log (tenant_id, actor_kind, actor_id, action, entity_type, entity_id, before, after)
    VALUES (
        CASE WHEN TG_TABLE_NAME = 'tenants' THEN (whole ->> 'id')::uuid ELSE (whole ->> 'tenant_id')::uuid END,
        coalesce(actor_kind, 'unknown'),
        nullif(current_setting('fieldline.actor_id', true), '')::uuid,
        TG_TABLE_NAME || '.' || verb,
        TG_TABLE_NAME,
        CASE WHEN whole ? 'id' THEN (whole ->> 'id')::uuid END,
        before_fields,
        after_fields);
    RETURN NULL;
END
$$;

DO $$
DECLARE
    audited text;
BEGIN
    FOREACH audited IN ARRAY ARRAY[
        'tenants', 'tenant_holidays', 'users', 'api_tokens', 'app_tokens', 'channels', 'opt_outs',
        'consent_events', 'workers', 'patients', 'contacts', 'sites', 'worker_sites', 'assets',
        'work_orders', 'work_order_comments', 'work_order_attachments', 'work_order_offers',
        'caregiver_assignments', 'visits', 'visit_exceptions',
        'ambulances', 'ambulance_crew_members', 'trips', 'trip_crew',
        'feedback', 'feedback_responses', 'complaints', 'complaint_actions', 'surveys',
        'coordinator_alerts']
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I
                        FOR EACH ROW EXECUTE FUNCTION audit_change()', audited || '_audit', audited);
    END LOOP;
END
$$;

-- A person's requests about their own data (GDPR articles 15, 17 and 20), from the EMR document.
CREATE TABLE gdpr_data_requests (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    patient_id      uuid NOT NULL,
    kind            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    requested_by_kind text NOT NULL,
    requested_by_id uuid,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    fulfilled_at    timestamptz,
    notes           text,
    -- What an erasure changed, by table (counts only).
    outcome         jsonb,
    CONSTRAINT gdpr_data_requests_patient_fkey FOREIGN KEY (tenant_id, patient_id) REFERENCES patients (tenant_id, id),
    CONSTRAINT gdpr_data_requests_kind_check CHECK (kind IN ('access', 'portability', 'erasure')),
    CONSTRAINT gdpr_data_requests_status_check CHECK (status IN ('pending', 'completed', 'rejected')),
    CONSTRAINT gdpr_data_requests_fulfilled CHECK ((status = 'completed') = (fulfilled_at IS NOT NULL))
);
CREATE INDEX gdpr_data_requests_tenant_idx ON gdpr_data_requests (tenant_id, requested_at DESC);
CREATE TRIGGER gdpr_data_requests_audit AFTER INSERT OR UPDATE OR DELETE ON gdpr_data_requests
    FOR EACH ROW EXECUTE FUNCTION audit_change();

-- An erased patient stays as a row (visits and trips point at it) with nothing that names them.
ALTER TABLE patients ADD COLUMN erased_at timestamptz;
