-- Failed, undelivered and read are all final: whichever comes first stands. A late 'read' no
-- longer turns a failed message into a read one (nor a late failure a read one into failed).
CREATE OR REPLACE FUNCTION message_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status
        WHEN 'queued' THEN 0
        WHEN 'sending' THEN 1
        WHEN 'sent' THEN 2
        WHEN 'delivered' THEN 3
        WHEN 'read' THEN 4
        WHEN 'undelivered' THEN 4
        WHEN 'failed' THEN 4
        ELSE -1
    END
$$;

-- Media fetches are retried with growing pauses like sends; their attempts are counted here.
ALTER TABLE message_media ADD COLUMN fetch_attempts integer NOT NULL DEFAULT 0;
