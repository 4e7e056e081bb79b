-- What the inbound router and the send queue need to be safe to re-run.

ALTER TABLE messages
    -- Set when the router has handled an inbound message; a re-run of its job then does nothing.
    ADD COLUMN routed_at                timestamptz,
    ADD COLUMN handled_by               text,
    -- The inbound message an outbound reply answers, so `fieldline simulate` and the panel can
    -- show what each message caused.
    ADD COLUMN caused_by_message_id     uuid,
    -- Non-essential messages (reminders, surveys) are never sent to an opted-out contact.
    ADD COLUMN essential                boolean NOT NULL DEFAULT true,
    -- The approved WhatsApp template and its parameters, when outside the 24-hour window.
    ADD COLUMN whatsapp_template        text,
    ADD COLUMN template_params          jsonb,
    ADD COLUMN next_attempt_at          timestamptz,
    ADD CONSTRAINT messages_caused_by_fkey FOREIGN KEY (tenant_id, caused_by_message_id) REFERENCES messages (tenant_id, id);

CREATE INDEX messages_caused_by_idx ON messages (tenant_id, caused_by_message_id) WHERE caused_by_message_id IS NOT NULL;

-- Delivery statuses only move forward: a late 'sent' never overwrites 'delivered'.
CREATE FUNCTION message_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status
        WHEN 'queued' THEN 0
        WHEN 'sending' THEN 1
        WHEN 'sent' THEN 2
        WHEN 'delivered' THEN 3
        WHEN 'undelivered' THEN 3
        WHEN 'failed' THEN 3
        WHEN 'read' THEN 4
        ELSE -1
    END
$$;
