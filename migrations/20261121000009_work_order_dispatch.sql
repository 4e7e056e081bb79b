-- What dispatching work orders by message needs beyond the maintenance tables.

-- The trade a job needs (plumbing, electrical, hvac, cleaning, ...), matched against workers' specialties.
ALTER TABLE work_orders ADD COLUMN required_specialty text;

-- Every worker a work order was offered to, and how they answered: a decline is never offered again.
CREATE TABLE work_order_offers (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL,
    work_order_id       uuid NOT NULL,
    worker_id           uuid NOT NULL,
    reason              text NOT NULL,
    message_id          uuid,
    offered_at          timestamptz NOT NULL DEFAULT now(),
    declined_at         timestamptz,
    decline_reason      text,
    CONSTRAINT wo_offers_work_order_fkey FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id),
    CONSTRAINT wo_offers_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT wo_offers_message_fkey FOREIGN KEY (tenant_id, message_id) REFERENCES messages (tenant_id, id)
);
CREATE INDEX wo_offers_work_order_idx ON work_order_offers (tenant_id, work_order_id, offered_at);

-- A photo arrives before its file is fetched: the attachment points at the message's media and
-- takes the file's details once the fetch job has them.
ALTER TABLE work_order_attachments
    ADD COLUMN media_id uuid,
    ALTER COLUMN file_name DROP NOT NULL,
    ALTER COLUMN storage_path DROP NOT NULL,
    ALTER COLUMN content_type DROP NOT NULL,
    ALTER COLUMN size_bytes DROP NOT NULL,
    ADD CONSTRAINT wo_attachments_media_unique UNIQUE (media_id),
    ADD CONSTRAINT wo_attachments_source_present CHECK (media_id IS NOT NULL OR storage_path IS NOT NULL);

-- Where a worker's shared location was recorded against a work order.
ALTER TABLE work_order_status_history
    ADD COLUMN latitude latitude,
    ADD COLUMN longitude longitude,
    ADD COLUMN message_id uuid;
