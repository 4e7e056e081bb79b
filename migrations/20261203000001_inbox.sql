-- Inbound messages between the webhook's 2xx and their storing. A webhook writes one row and
-- answers; the inbox drainer (one at a time, in `seq` order) finds or creates the contact and the
-- conversation, stores the message and pushes the jobs that route it, in batches. Before this
-- table a webhook did all of that itself, in a statement costing ten times the bare insert.
--
-- Not scoped by tenant: the tenant is known only once the receiving number is looked up, which
-- is the drainer's first step (as for early_statuses). No unique key on the provider's id
-- either: a provider's retry may add a second row while the first waits, and storing it finds
-- the first copy in `messages` (messages_provider_message_key) and writes nothing.
CREATE TABLE inbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT inbox_pkey PRIMARY KEY,
    -- The parsed, provider-neutral message (`channels::Inbound`).
    message      json NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- The webhook's request, named in the audit log of a contact the message creates.
    request_id   text,
    ip           text,
    -- A message that could not be stored waits `retry_at` and does not hold up the others.
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    retry_at     timestamptz NOT NULL DEFAULT '-infinity'
);
