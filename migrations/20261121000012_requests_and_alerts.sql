-- Reports by message, work-order watch timers, and alerts that reach coordinators by message.

-- A coordinator with a phone number also gets alerts by message (WhatsApp or SMS).
ALTER TABLE users ADD COLUMN phone e164;
CREATE UNIQUE INDEX users_tenant_phone_key ON users (tenant_id, phone) WHERE phone IS NOT NULL;

-- "Not started by its scheduled time" and "past its expected duration" are raised once per work
-- order, however often a timer fires; "no worker available" can recur after every round of offers.
CREATE UNIQUE INDEX coordinator_alerts_once_key ON coordinator_alerts (tenant_id, work_order_id, kind)
    WHERE kind IN ('not_started', 'overdue');

-- Who reported it by message, for the history and the panel.
ALTER TABLE work_order_attachments
    ADD COLUMN uploaded_by_contact_id uuid,
    ADD CONSTRAINT wo_attachments_contact_fkey FOREIGN KEY (tenant_id, uploaded_by_contact_id) REFERENCES contacts (tenant_id, id);

-- One rating per work order and person: a second reply corrects the first.
CREATE UNIQUE INDEX feedback_work_order_rating_key ON feedback (tenant_id, work_order_id, contact_id)
    WHERE feedback_type = 'service_rating' AND work_order_id IS NOT NULL;

-- Whether people the organisation does not know (renters, ward staff) may report problems by
-- message. Off, a stranger is told the number is not for them.
ALTER TABLE tenants ADD COLUMN reports_by_message boolean NOT NULL DEFAULT true;
