-- A status callback can arrive before the send job has written the provider's message id (a
-- fast provider, a slow database). It is kept here and applied when the id is recorded, instead
-- of being dropped. Rows no message ever claims are pruned after a day.
CREATE TABLE early_statuses (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    provider            text NOT NULL,
    provider_message_id text NOT NULL,
    status              text NOT NULL,
    error_code          text,
    error_message       text,
    at                  timestamptz,
    received_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX early_statuses_message_idx ON early_statuses (provider, provider_message_id);
CREATE INDEX early_statuses_received_idx ON early_statuses (received_at);
