-- Whether a courtesy message (a reminder, a survey, a requester's status update) may go to a
-- contact on a channel: not if they opted out of that number, and, for a patient, only if the
-- consent on their record covers that kind of channel (consent_sms, consent_whatsapp, both
-- false until recorded). Essential messages (answers to what the person wrote, dispatches,
-- sign-in codes) do not ask. The one definition notify and the SMS fallback share.
CREATE FUNCTION courtesy_declined(p_tenant_id uuid, p_contact_id uuid, p_channel_id uuid)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
               SELECT 1 FROM opt_outs o
               WHERE o.tenant_id = p_tenant_id AND o.contact_id = p_contact_id AND o.channel_id = p_channel_id)
        OR EXISTS (
               SELECT 1
               FROM contacts c
               JOIN patients p ON p.tenant_id = c.tenant_id AND p.id = c.patient_id
               JOIN channels ch ON ch.tenant_id = c.tenant_id AND ch.id = p_channel_id
               WHERE c.tenant_id = p_tenant_id AND c.id = p_contact_id
                 AND NOT CASE ch.kind WHEN 'sms' THEN p.consent_sms ELSE p.consent_whatsapp END)
$$;
