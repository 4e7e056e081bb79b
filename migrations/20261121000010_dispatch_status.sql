-- The dispatch message's delivery status, kept on the work order as the maintenance-request
-- document asks. A trigger, so messaging never needs to know about work orders.
CREATE FUNCTION work_orders_follow_dispatch_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE work_orders SET whatsapp_status = NEW.status
    WHERE tenant_id = NEW.tenant_id AND dispatch_message_id = NEW.id
      AND whatsapp_status IS DISTINCT FROM NEW.status;
    RETURN NEW;
END
$$;

CREATE TRIGGER messages_dispatch_status AFTER UPDATE OF status ON messages
    FOR EACH ROW WHEN (NEW.related_entity_type = 'work_order' AND NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION work_orders_follow_dispatch_status();
