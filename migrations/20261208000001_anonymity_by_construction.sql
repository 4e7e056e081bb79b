-- Anonymous feedback that stays anonymous.
--
-- The messages of an anonymous exchange (what the sender wrote, the thanks, answers through the
-- relay) are kept for sending and delivery but listed on no staff surface: listed, their time
-- and contact would name the sender of the feedback.
ALTER TABLE messages ADD COLUMN anonymous boolean NOT NULL DEFAULT false;

-- An SMS sent in place of an anonymous WhatsApp message is as anonymous as it.
CREATE FUNCTION messages_fallback_inherits_anonymity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.anonymous := NEW.anonymous OR coalesce(
        (SELECT o.anonymous FROM messages o WHERE o.tenant_id = NEW.tenant_id AND o.id = NEW.fallback_of_message_id),
        false);
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_fallback_inherits_anonymity BEFORE INSERT ON messages
    FOR EACH ROW WHEN (NEW.fallback_of_message_id IS NOT NULL)
    EXECUTE FUNCTION messages_fallback_inherits_anonymity();

-- Anonymous feedback waits here until the next release, when everything held for the
-- organisation becomes feedback at once, in random order, dated at the release. Its time, its
-- id and its place in the audit chain then say nothing about when it was written. Not audited:
-- the row's insert would be dated with the sender's message.
CREATE TABLE anonymous_feedback_held (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    relay_token text NOT NULL,
    comments    text NOT NULL,
    channel     text NOT NULL
);
CREATE INDEX anonymous_feedback_held_tenant_idx ON anonymous_feedback_held (tenant_id);

-- An erasure blanks the audit rows of the erased patient's records and no others: the records
-- it found (by id) are kept with the request, and the log's guard refuses any other row.
ALTER TABLE gdpr_data_requests ADD COLUMN erased_records uuid[];

CREATE OR REPLACE FUNCTION audit_log_guard() RETURNS trigger
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
           AND (to_jsonb(NEW) - '{before,after,reason,redacted_by}'::text[]) = (to_jsonb(OLD) - '{before,after,reason,redacted_by}'::text[])
           AND EXISTS (SELECT 1 FROM gdpr_data_requests g
                        WHERE g.id = erasure::uuid AND g.tenant_id = OLD.tenant_id
                          AND OLD.entity_id = ANY (g.erased_records)) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- The app's sign-in answers a number that is no caregiver's exactly as it answers a caregiver's:
-- the same limit on codes, and a code "waiting" that takes wrong guesses. Numbers are kept as
-- hashes only.
CREATE TABLE app_login_decoys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_hash  bytea NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz,
    CONSTRAINT app_login_decoys_attempts_range CHECK (attempts BETWEEN 0 AND 5)
);
CREATE INDEX app_login_decoys_phone_idx ON app_login_decoys (phone_hash, created_at DESC);
