-- Maintenance and housekeeping: assets, work orders and everything that happens to them.

CREATE TABLE assets (
    id                          uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id                   uuid NOT NULL REFERENCES tenants (id),
    site_id                     uuid,
    name                        text NOT NULL,
    asset_type                  text NOT NULL,
    status                      text NOT NULL DEFAULT 'operational',
    serial_number               text,
    model                       text,
    manufacturer                text,
    location_detail             text,
    installed_on                date,
    maintenance_frequency_days  integer,
    last_maintenance_at         timestamptz,
    next_maintenance_at         timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    deleted_at                  timestamptz,
    CONSTRAINT assets_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT assets_site_fkey FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id),
    CONSTRAINT assets_status_check CHECK (status IN ('operational', 'needs_maintenance', 'under_maintenance', 'out_of_service', 'retired')),
    CONSTRAINT assets_frequency_positive CHECK (maintenance_frequency_days > 0),
    CONSTRAINT assets_name_present CHECK (length(btrim(name)) > 0)
);
CREATE UNIQUE INDEX assets_tenant_serial_key ON assets (tenant_id, serial_number)
    WHERE serial_number IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX assets_tenant_site_idx ON assets (tenant_id, site_id) WHERE deleted_at IS NULL;
-- The preventive-maintenance schedule scans for assets coming due.
CREATE INDEX assets_next_maintenance_idx ON assets (next_maintenance_at)
    WHERE maintenance_frequency_days IS NOT NULL AND deleted_at IS NULL;
CREATE TRIGGER assets_updated_at BEFORE UPDATE ON assets FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE work_orders (
    id                          uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id                   uuid NOT NULL REFERENCES tenants (id),
    reference                   text NOT NULL,
    kind                        text NOT NULL,
    request_type                text NOT NULL,
    title                       text NOT NULL,
    description                 text,
    priority                    text NOT NULL DEFAULT 'medium',
    status                      text NOT NULL DEFAULT 'pending',
    site_id                     uuid,
    location_detail             text,
    latitude                    latitude,
    longitude                   longitude,
    asset_id                    uuid,
    requester_contact_id        uuid,
    created_by_user_id          uuid,
    assigned_worker_id          uuid,
    scheduled_at                timestamptz,
    expected_duration_minutes   integer,
    assigned_at                 timestamptz,
    accepted_at                 timestamptz,
    started_at                  timestamptz,
    completed_at                timestamptz,
    cancelled_at                timestamptz,
    labour_hours                numeric(6, 2),
    parts_used                  text,
    -- Delivery status of the dispatch message sent to the assigned worker.
    dispatch_message_id         uuid,
    whatsapp_status             text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT work_orders_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT work_orders_tenant_reference_key UNIQUE (tenant_id, reference),
    CONSTRAINT work_orders_site_fkey FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, id),
    CONSTRAINT work_orders_asset_fkey FOREIGN KEY (tenant_id, asset_id) REFERENCES assets (tenant_id, id),
    CONSTRAINT work_orders_requester_fkey FOREIGN KEY (tenant_id, requester_contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT work_orders_created_by_fkey FOREIGN KEY (tenant_id, created_by_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT work_orders_worker_fkey FOREIGN KEY (tenant_id, assigned_worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT work_orders_kind_check CHECK (kind IN ('maintenance', 'housekeeping')),
    -- The support-services document keeps two request-type lists; each belongs to one kind.
    CONSTRAINT work_orders_request_type_check CHECK (
        (kind = 'maintenance' AND request_type IN ('corrective', 'preventive', 'emergency', 'inspection'))
        OR (kind = 'housekeeping' AND request_type IN ('cleaning', 'disinfection', 'linen', 'waste', 'spill'))),
    CONSTRAINT work_orders_priority_check CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    CONSTRAINT work_orders_status_check CHECK (status IN ('pending', 'assigned', 'accepted', 'in_progress', 'on_hold', 'completed', 'cancelled')),
    CONSTRAINT work_orders_whatsapp_status_check CHECK (whatsapp_status IN ('queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'undelivered')),
    CONSTRAINT work_orders_location_pair CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CONSTRAINT work_orders_labour_hours_range CHECK (labour_hours >= 0 AND labour_hours < 1000),
    CONSTRAINT work_orders_duration_positive CHECK (expected_duration_minutes > 0),
    CONSTRAINT work_orders_title_present CHECK (length(btrim(title)) > 0)
);
CREATE INDEX work_orders_tenant_status_idx ON work_orders (tenant_id, status, priority);
CREATE INDEX work_orders_tenant_worker_idx ON work_orders (tenant_id, assigned_worker_id, status);
CREATE INDEX work_orders_tenant_site_idx ON work_orders (tenant_id, site_id);
CREATE INDEX work_orders_requester_idx ON work_orders (tenant_id, requester_contact_id);
CREATE TRIGGER work_orders_updated_at BEFORE UPDATE ON work_orders FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE work_order_status_history (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL,
    work_order_id   uuid NOT NULL,
    from_status     text,
    to_status       text NOT NULL,
    actor_kind      text NOT NULL,
    actor_user_id   uuid,
    actor_worker_id uuid,
    actor_contact_id uuid,
    channel         text NOT NULL,
    note            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wo_history_work_order_fkey FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id),
    CONSTRAINT wo_history_user_fkey FOREIGN KEY (tenant_id, actor_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT wo_history_worker_fkey FOREIGN KEY (tenant_id, actor_worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT wo_history_contact_fkey FOREIGN KEY (tenant_id, actor_contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT wo_history_actor_kind_check CHECK (actor_kind IN ('system', 'coordinator', 'worker', 'requester')),
    CONSTRAINT wo_history_channel_check CHECK (channel IN ('panel', 'api', 'whatsapp', 'sms', 'app', 'system')),
    CONSTRAINT wo_history_from_status_check CHECK (from_status IN ('pending', 'assigned', 'accepted', 'in_progress', 'on_hold', 'completed', 'cancelled')),
    CONSTRAINT wo_history_to_status_check CHECK (to_status IN ('pending', 'assigned', 'accepted', 'in_progress', 'on_hold', 'completed', 'cancelled'))
);
CREATE INDEX wo_history_work_order_idx ON work_order_status_history (tenant_id, work_order_id, created_at);

CREATE TABLE work_order_comments (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL,
    work_order_id       uuid NOT NULL,
    author_kind         text NOT NULL,
    author_user_id      uuid,
    author_worker_id    uuid,
    author_contact_id   uuid,
    body                text NOT NULL,
    message_id          uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wo_comments_work_order_fkey FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id),
    CONSTRAINT wo_comments_user_fkey FOREIGN KEY (tenant_id, author_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT wo_comments_worker_fkey FOREIGN KEY (tenant_id, author_worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT wo_comments_contact_fkey FOREIGN KEY (tenant_id, author_contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT wo_comments_author_kind_check CHECK (author_kind IN ('requester', 'coordinator', 'worker')),
    CONSTRAINT wo_comments_body_present CHECK (length(btrim(body)) > 0)
);
CREATE INDEX wo_comments_work_order_idx ON work_order_comments (tenant_id, work_order_id, created_at);

CREATE TABLE work_order_attachments (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL,
    work_order_id       uuid NOT NULL,
    uploaded_by_kind    text NOT NULL,
    uploaded_by_worker_id uuid,
    uploaded_by_user_id uuid,
    file_name           text NOT NULL,
    storage_path        text NOT NULL,
    content_type        text NOT NULL,
    size_bytes          bigint NOT NULL,
    message_id          uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wo_attachments_work_order_fkey FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id),
    CONSTRAINT wo_attachments_worker_fkey FOREIGN KEY (tenant_id, uploaded_by_worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT wo_attachments_user_fkey FOREIGN KEY (tenant_id, uploaded_by_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT wo_attachments_kind_check CHECK (uploaded_by_kind IN ('requester', 'coordinator', 'worker')),
    CONSTRAINT wo_attachments_size_nonnegative CHECK (size_bytes >= 0)
);
CREATE INDEX wo_attachments_work_order_idx ON work_order_attachments (tenant_id, work_order_id);
