-- Ambulances, their crews, trips and the status reports crews send from the road.

CREATE TABLE ambulances (
    id                      uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id               uuid NOT NULL REFERENCES tenants (id),
    registration_number     text NOT NULL,
    ambulance_type          text NOT NULL,
    status                  text NOT NULL DEFAULT 'available',
    capacity                integer NOT NULL DEFAULT 1,
    features                text[] NOT NULL DEFAULT '{}',
    base_site_id            uuid,
    last_maintenance_at     timestamptz,
    next_maintenance_at     timestamptz,
    current_latitude        latitude,
    current_longitude       longitude,
    current_accuracy_m      double precision,
    position_reported_at    timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    CONSTRAINT ambulances_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT ambulances_base_site_fkey FOREIGN KEY (tenant_id, base_site_id) REFERENCES sites (tenant_id, id),
    CONSTRAINT ambulances_type_check CHECK (ambulance_type IN ('basic_life_support', 'advanced_life_support', 'patient_transport', 'neonatal', 'mobile_icu')),
    CONSTRAINT ambulances_status_check CHECK (status IN ('available', 'assigned', 'in_service', 'under_maintenance', 'out_of_service')),
    CONSTRAINT ambulances_capacity_positive CHECK (capacity > 0),
    CONSTRAINT ambulances_position_pair CHECK ((current_latitude IS NULL) = (current_longitude IS NULL)),
    CONSTRAINT ambulances_accuracy_nonnegative CHECK (current_accuracy_m >= 0),
    CONSTRAINT ambulances_registration_present CHECK (length(btrim(registration_number)) > 0)
);
-- The support-services document makes the registration globally unique; with tenants it is unique
-- within one organisation's live fleet.
CREATE UNIQUE INDEX ambulances_tenant_registration_key ON ambulances (tenant_id, upper(registration_number))
    WHERE deleted_at IS NULL;
CREATE INDEX ambulances_tenant_status_idx ON ambulances (tenant_id, status) WHERE deleted_at IS NULL;
CREATE TRIGGER ambulances_updated_at BEFORE UPDATE ON ambulances FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE ambulance_crew_members (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    worker_id       uuid NOT NULL,
    ambulance_id    uuid,
    role            text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT crew_members_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT crew_members_worker_key UNIQUE (worker_id),
    CONSTRAINT crew_members_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT crew_members_ambulance_fkey FOREIGN KEY (tenant_id, ambulance_id) REFERENCES ambulances (tenant_id, id),
    CONSTRAINT crew_members_role_check CHECK (role IN ('driver', 'paramedic', 'emt', 'nurse', 'doctor'))
);
CREATE INDEX crew_members_ambulance_idx ON ambulance_crew_members (tenant_id, ambulance_id) WHERE active;
CREATE TRIGGER crew_members_updated_at BEFORE UPDATE ON ambulance_crew_members FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE trips (
    id                          uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id                   uuid NOT NULL REFERENCES tenants (id),
    reference                   text NOT NULL,
    request_type                text NOT NULL,
    priority                    text NOT NULL DEFAULT 'medium',
    status                      text NOT NULL DEFAULT 'pending',
    pickup_address              text NOT NULL,
    pickup_latitude             latitude,
    pickup_longitude            longitude,
    dropoff_address             text NOT NULL,
    dropoff_latitude            latitude,
    dropoff_longitude           longitude,
    patient_id                  uuid,
    ambulance_id                uuid,
    contact_id                  uuid,
    contact_name                text,
    contact_phone               e164,
    requested_by_user_id        uuid,
    scheduled_at                timestamptz NOT NULL,
    equipment_needed            text[] NOT NULL DEFAULT '{}',
    special_instructions        text,
    notes                       text,
    assigned_at                 timestamptz,
    en_route_to_pickup_at       timestamptz,
    at_pickup_at                timestamptz,
    en_route_to_dropoff_at      timestamptz,
    completed_at                timestamptz,
    cancelled_at                timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT trips_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT trips_tenant_reference_key UNIQUE (tenant_id, reference),
    CONSTRAINT trips_patient_fkey FOREIGN KEY (tenant_id, patient_id) REFERENCES patients (tenant_id, id),
    CONSTRAINT trips_ambulance_fkey FOREIGN KEY (tenant_id, ambulance_id) REFERENCES ambulances (tenant_id, id),
    CONSTRAINT trips_contact_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT trips_requested_by_fkey FOREIGN KEY (tenant_id, requested_by_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT trips_request_type_check CHECK (request_type IN ('emergency', 'non_emergency', 'transfer', 'discharge', 'scheduled')),
    CONSTRAINT trips_priority_check CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    CONSTRAINT trips_status_check CHECK (status IN ('pending', 'assigned', 'en_route_to_pickup', 'at_pickup', 'en_route_to_dropoff', 'completed', 'cancelled')),
    CONSTRAINT trips_pickup_pair CHECK ((pickup_latitude IS NULL) = (pickup_longitude IS NULL)),
    CONSTRAINT trips_dropoff_pair CHECK ((dropoff_latitude IS NULL) = (dropoff_longitude IS NULL))
);
CREATE INDEX trips_tenant_status_idx ON trips (tenant_id, status, scheduled_at);
CREATE INDEX trips_ambulance_idx ON trips (tenant_id, ambulance_id, status);
CREATE TRIGGER trips_updated_at BEFORE UPDATE ON trips FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The crew on one trip (the support-services document keeps this as JSON; a table keeps it queryable).
CREATE TABLE trip_crew (
    tenant_id   uuid NOT NULL,
    trip_id     uuid NOT NULL,
    worker_id   uuid NOT NULL,
    role        text NOT NULL,
    CONSTRAINT trip_crew_pkey PRIMARY KEY (trip_id, worker_id),
    CONSTRAINT trip_crew_trip_fkey FOREIGN KEY (tenant_id, trip_id) REFERENCES trips (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT trip_crew_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT trip_crew_role_check CHECK (role IN ('driver', 'paramedic', 'emt', 'nurse', 'doctor'))
);
CREATE INDEX trip_crew_worker_idx ON trip_crew (tenant_id, worker_id);

CREATE TABLE trip_status_events (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL,
    trip_id         uuid NOT NULL,
    from_status     text,
    to_status       text NOT NULL,
    actor_kind      text NOT NULL,
    actor_user_id   uuid,
    actor_worker_id uuid,
    channel         text NOT NULL,
    latitude        latitude,
    longitude       longitude,
    accuracy_m      double precision,
    note            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT trip_events_trip_fkey FOREIGN KEY (tenant_id, trip_id) REFERENCES trips (tenant_id, id),
    CONSTRAINT trip_events_user_fkey FOREIGN KEY (tenant_id, actor_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT trip_events_worker_fkey FOREIGN KEY (tenant_id, actor_worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT trip_events_actor_kind_check CHECK (actor_kind IN ('system', 'coordinator', 'crew')),
    CONSTRAINT trip_events_channel_check CHECK (channel IN ('panel', 'api', 'whatsapp', 'sms', 'app', 'system')),
    CONSTRAINT trip_events_to_status_check CHECK (to_status IN ('pending', 'assigned', 'en_route_to_pickup', 'at_pickup', 'en_route_to_dropoff', 'completed', 'cancelled')),
    CONSTRAINT trip_events_position_pair CHECK ((latitude IS NULL) = (longitude IS NULL))
);
CREATE INDEX trip_events_trip_idx ON trip_status_events (tenant_id, trip_id, created_at);
