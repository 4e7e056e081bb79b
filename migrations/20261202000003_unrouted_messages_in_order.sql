-- One person's messages are routed in the order they came: a routing job first routes that
-- person's earlier messages still waiting. This finds them without reading the person's history.
CREATE INDEX messages_unrouted_idx ON messages (tenant_id, contact_id, received_at, id)
    WHERE direction = 'inbound' AND routed_at IS NULL;
