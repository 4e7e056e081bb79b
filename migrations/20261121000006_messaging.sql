-- Channels, conversations, messages and consent: everything the messaging layer keeps.

-- A number the service sends from and receives on. Provider credentials live in the environment,
-- never here. A number belongs to exactly one tenant: inbound webhooks find their tenant by it.
CREATE TABLE channels (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    provider        text NOT NULL,
    kind            text NOT NULL,
    phone_number    e164 NOT NULL,
    -- The provider's own id for the number, such as Meta's phone number id.
    provider_ref    text,
    display_name    text,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT channels_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT channels_provider_kind_number_key UNIQUE (provider, kind, phone_number),
    CONSTRAINT channels_provider_check CHECK (provider IN ('twilio', 'meta', 'console')),
    CONSTRAINT channels_kind_check CHECK (kind IN ('sms', 'whatsapp')),
    CONSTRAINT channels_meta_is_whatsapp CHECK (provider <> 'meta' OR (kind = 'whatsapp' AND provider_ref IS NOT NULL))
);
CREATE UNIQUE INDEX channels_provider_ref_key ON channels (provider, provider_ref) WHERE provider_ref IS NOT NULL;
CREATE INDEX channels_tenant_idx ON channels (tenant_id, kind) WHERE active;
CREATE TRIGGER channels_updated_at BEFORE UPDATE ON channels FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE conversations (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    contact_id          uuid NOT NULL,
    channel_id          uuid NOT NULL,
    -- Start of WhatsApp's 24-hour customer-service window.
    last_inbound_at     timestamptz,
    last_outbound_at    timestamptz,
    bot_state           jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT conversations_contact_channel_key UNIQUE (contact_id, channel_id),
    CONSTRAINT conversations_contact_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT conversations_channel_fkey FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id)
);
CREATE TRIGGER conversations_updated_at BEFORE UPDATE ON conversations FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE messages (
    id                          uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id                   uuid NOT NULL REFERENCES tenants (id),
    conversation_id             uuid NOT NULL,
    channel_id                  uuid NOT NULL,
    contact_id                  uuid NOT NULL,
    direction                   text NOT NULL,
    kind                        text NOT NULL DEFAULT 'text',
    body                        text,
    latitude                    latitude,
    longitude                   longitude,
    location_label              text,
    -- Reply-button id or list-row id a contact tapped; buttons offered on an outbound message.
    interactive_reply_id        text,
    buttons                     jsonb,
    template_key                text,
    locale                      locale,
    provider                    text NOT NULL,
    provider_message_id         text,
    reply_to_provider_message_id text,
    sender_profile_name         text,
    status                      text NOT NULL,
    error_code                  text,
    error_message               text,
    attempts                    integer NOT NULL DEFAULT 0,
    queued_at                   timestamptz,
    sending_at                  timestamptz,
    sent_at                     timestamptz,
    delivered_at                timestamptz,
    read_at                     timestamptz,
    failed_at                   timestamptz,
    received_at                 timestamptz,
    related_entity_type         text,
    related_entity_id           uuid,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_tenant_id_id_key UNIQUE (tenant_id, id),
    -- A provider's retry of the same webhook carries the same id: it is stored once.
    CONSTRAINT messages_provider_message_key UNIQUE (provider, provider_message_id),
    CONSTRAINT messages_conversation_fkey FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id),
    CONSTRAINT messages_channel_fkey FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id),
    CONSTRAINT messages_contact_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT messages_direction_check CHECK (direction IN ('inbound', 'outbound')),
    CONSTRAINT messages_kind_check CHECK (kind IN ('text', 'location', 'media', 'interactive', 'template', 'unsupported')),
    CONSTRAINT messages_provider_check CHECK (provider IN ('twilio', 'meta', 'console')),
    CONSTRAINT messages_status_check CHECK (status IN ('received', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'undelivered')),
    CONSTRAINT messages_inbound_status CHECK ((direction = 'inbound') = (status = 'received')),
    CONSTRAINT messages_inbound_has_provider_id CHECK (direction = 'outbound' OR provider_message_id IS NOT NULL),
    CONSTRAINT messages_location_pair CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CONSTRAINT messages_related_entity_check CHECK (related_entity_type IN ('work_order', 'visit', 'trip', 'feedback', 'complaint', 'survey'))
);
CREATE INDEX messages_conversation_idx ON messages (tenant_id, conversation_id, created_at);
CREATE INDEX messages_related_idx ON messages (tenant_id, related_entity_type, related_entity_id)
    WHERE related_entity_id IS NOT NULL;
CREATE TRIGGER messages_updated_at BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION set_updated_at();

ALTER TABLE work_orders
    ADD CONSTRAINT work_orders_dispatch_message_fkey FOREIGN KEY (tenant_id, dispatch_message_id) REFERENCES messages (tenant_id, id);

-- Photos, documents, voice notes: what the provider told us, and where the file ended up.
CREATE TABLE message_media (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL,
    message_id          uuid NOT NULL,
    media_kind          text NOT NULL,
    provider_media_id   text,
    provider_url        text,
    content_type        text,
    caption             text,
    file_name           text,
    storage_path        text,
    size_bytes          bigint,
    fetched_at          timestamptz,
    fetch_error         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_media_message_fkey FOREIGN KEY (tenant_id, message_id) REFERENCES messages (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT message_media_kind_check CHECK (media_kind IN ('image', 'document', 'audio', 'video', 'voice', 'sticker')),
    CONSTRAINT message_media_source_present CHECK (num_nonnulls(provider_media_id, provider_url) > 0)
);
CREATE INDEX message_media_message_idx ON message_media (tenant_id, message_id);

-- Current opt-out state per contact and channel; the history is in consent_events.
CREATE TABLE opt_outs (
    tenant_id       uuid NOT NULL,
    contact_id      uuid NOT NULL,
    channel_id      uuid NOT NULL,
    opted_out_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT opt_outs_pkey PRIMARY KEY (contact_id, channel_id),
    CONSTRAINT opt_outs_contact_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT opt_outs_channel_fkey FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id)
);

CREATE TABLE consent_events (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL,
    contact_id          uuid NOT NULL,
    channel_id          uuid,
    event               text NOT NULL,
    source              text NOT NULL,
    source_message_id   uuid,
    actor_user_id       uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consent_events_contact_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT consent_events_channel_fkey FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id),
    CONSTRAINT consent_events_message_fkey FOREIGN KEY (tenant_id, source_message_id) REFERENCES messages (tenant_id, id),
    CONSTRAINT consent_events_user_fkey FOREIGN KEY (tenant_id, actor_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT consent_events_event_check CHECK (event IN ('opt_out', 'opt_in')),
    CONSTRAINT consent_events_source_check CHECK (source IN ('message', 'provider', 'panel', 'api', 'import'))
);
CREATE INDEX consent_events_contact_idx ON consent_events (tenant_id, contact_id, created_at);
