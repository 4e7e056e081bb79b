-- The pace of sends per sending number, shared by every process (a process-local limiter let
-- N processes send N times the rate). `tat` is the theoretical arrival time of the next send
-- (GCRA): each send moves it on by 1/rate, and waits while it is more than a second ahead.
CREATE TABLE channel_send_pace (
    tenant_id   uuid NOT NULL,
    channel_id  uuid NOT NULL,
    tat         timestamptz NOT NULL,
    CONSTRAINT channel_send_pace_pkey PRIMARY KEY (tenant_id, channel_id),
    CONSTRAINT channel_send_pace_channel_fkey FOREIGN KEY (tenant_id, channel_id)
        REFERENCES channels (tenant_id, id) ON DELETE CASCADE
);
