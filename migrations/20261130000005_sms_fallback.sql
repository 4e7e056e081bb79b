-- WhatsApp first, SMS when WhatsApp fails for good or has not delivered by a deadline.
--
-- At notify time, a WhatsApp message that could also go by SMS gets a plan here: the SMS
-- channel and the SMS text (numbered choices instead of buttons), and the deadline its message
-- key sets. The plan is carried out at most once: `sms_message_id` is set in the same
-- transaction that queues the SMS.
CREATE TABLE message_fallbacks (
    tenant_id       uuid NOT NULL,
    message_id      uuid NOT NULL,
    channel_id      uuid NOT NULL,
    body            text NOT NULL,
    -- The real text when the message carries a secret (a sign-in code); dropped once the
    -- plan is settled either way.
    secret_body     text,
    due_at          timestamptz,
    sms_message_id  uuid,
    reason          text,
    decided_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_fallbacks_pkey PRIMARY KEY (tenant_id, message_id),
    CONSTRAINT message_fallbacks_message_fkey FOREIGN KEY (tenant_id, message_id) REFERENCES messages (tenant_id, id),
    CONSTRAINT message_fallbacks_channel_fkey FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id),
    CONSTRAINT message_fallbacks_sms_message_fkey FOREIGN KEY (tenant_id, sms_message_id) REFERENCES messages (tenant_id, id),
    CONSTRAINT message_fallbacks_reason_check CHECK (reason IN ('whatsapp_failed', 'not_delivered_in_time')),
    CONSTRAINT message_fallbacks_decided_check CHECK ((sms_message_id IS NULL) OR (reason IS NOT NULL AND decided_at IS NOT NULL))
);

-- The SMS says what it stands in for, so timelines can show "by SMS: WhatsApp failed".
ALTER TABLE messages
    ADD COLUMN fallback_of_message_id uuid,
    ADD COLUMN fallback_reason text,
    ADD CONSTRAINT messages_fallback_of_fkey FOREIGN KEY (tenant_id, fallback_of_message_id) REFERENCES messages (tenant_id, id),
    ADD CONSTRAINT messages_fallback_reason_check CHECK (fallback_reason IN ('whatsapp_failed', 'not_delivered_in_time')),
    ADD CONSTRAINT messages_fallback_pair_check CHECK ((fallback_of_message_id IS NULL) = (fallback_reason IS NULL));
