-- Home-care visits and their electronic visit verification.

CREATE TABLE caregiver_assignments (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    caregiver_id    uuid NOT NULL,
    patient_id      uuid NOT NULL,
    service_type    text NOT NULL,
    -- The shift window, in the tenant's time zone, on the given days of the week (1 = Monday).
    starts_on       date NOT NULL,
    ends_on         date,
    shift_start     time NOT NULL,
    shift_end       time NOT NULL,
    days_of_week    smallint[] NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'active',
    notes           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT caregiver_assignments_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT caregiver_assignments_caregiver_fkey FOREIGN KEY (tenant_id, caregiver_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT caregiver_assignments_patient_fkey FOREIGN KEY (tenant_id, patient_id) REFERENCES patients (tenant_id, id),
    CONSTRAINT caregiver_assignments_status_check CHECK (status IN ('active', 'paused', 'ended', 'cancelled')),
    CONSTRAINT caregiver_assignments_days_check CHECK (days_of_week <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]),
    CONSTRAINT caregiver_assignments_dates_order CHECK (ends_on IS NULL OR ends_on >= starts_on)
);
CREATE INDEX caregiver_assignments_caregiver_idx ON caregiver_assignments (tenant_id, caregiver_id, status);
CREATE INDEX caregiver_assignments_patient_idx ON caregiver_assignments (tenant_id, patient_id);
CREATE TRIGGER caregiver_assignments_updated_at BEFORE UPDATE ON caregiver_assignments FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE visits (
    id                      uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id               uuid NOT NULL REFERENCES tenants (id),
    assignment_id           uuid,
    caregiver_id            uuid NOT NULL,
    patient_id              uuid NOT NULL,
    service_type            text NOT NULL,
    scheduled_start         timestamptz NOT NULL,
    scheduled_end           timestamptz NOT NULL,
    status                  text NOT NULL DEFAULT 'scheduled',
    check_in_at             timestamptz,
    check_in_latitude       latitude,
    check_in_longitude      longitude,
    check_in_accuracy_m     double precision,
    check_in_distance_m     double precision,
    check_in_verified       boolean,
    check_in_method         text,
    check_out_at            timestamptz,
    check_out_latitude      latitude,
    check_out_longitude     longitude,
    check_out_accuracy_m    double precision,
    check_out_distance_m    double precision,
    check_out_verified      boolean,
    check_out_method        text,
    notes                   text,
    vitals                  jsonb,
    manually_edited         boolean NOT NULL DEFAULT false,
    cancelled_reason        text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT visits_tenant_id_id_key UNIQUE (tenant_id, id),
    -- Recurring generation runs ahead repeatedly; this key makes it idempotent.
    CONSTRAINT visits_assignment_start_key UNIQUE (assignment_id, scheduled_start),
    CONSTRAINT visits_assignment_fkey FOREIGN KEY (tenant_id, assignment_id) REFERENCES caregiver_assignments (tenant_id, id),
    CONSTRAINT visits_caregiver_fkey FOREIGN KEY (tenant_id, caregiver_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT visits_patient_fkey FOREIGN KEY (tenant_id, patient_id) REFERENCES patients (tenant_id, id),
    CONSTRAINT visits_status_check CHECK (status IN ('scheduled', 'in_progress', 'completed', 'missed', 'cancelled')),
    CONSTRAINT visits_window_order CHECK (scheduled_end > scheduled_start),
    CONSTRAINT visits_check_in_method_check CHECK (check_in_method IN ('app', 'whatsapp', 'sms', 'manual')),
    CONSTRAINT visits_check_out_method_check CHECK (check_out_method IN ('app', 'whatsapp', 'sms', 'manual')),
    CONSTRAINT visits_check_in_position_pair CHECK ((check_in_latitude IS NULL) = (check_in_longitude IS NULL)),
    CONSTRAINT visits_check_out_position_pair CHECK ((check_out_latitude IS NULL) = (check_out_longitude IS NULL)),
    CONSTRAINT visits_accuracy_nonnegative CHECK (check_in_accuracy_m >= 0 AND check_out_accuracy_m >= 0),
    CONSTRAINT visits_check_out_after_in CHECK (check_out_at IS NULL OR (check_in_at IS NOT NULL AND check_out_at >= check_in_at))
);
CREATE INDEX visits_tenant_start_idx ON visits (tenant_id, scheduled_start);
CREATE INDEX visits_caregiver_start_idx ON visits (tenant_id, caregiver_id, scheduled_start);
CREATE INDEX visits_patient_idx ON visits (tenant_id, patient_id, scheduled_start);
CREATE TRIGGER visits_updated_at BEFORE UPDATE ON visits FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Every reading a caregiver sends is kept as it came, whether or not it changed the visit.
CREATE TABLE visit_events (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL,
    visit_id            uuid NOT NULL,
    worker_id           uuid NOT NULL,
    kind                text NOT NULL,
    method              text NOT NULL,
    client_event_id     text,
    latitude            latitude,
    longitude           longitude,
    accuracy_m          double precision,
    distance_m          double precision,
    verified            boolean NOT NULL DEFAULT false,
    device_time         timestamptz,
    received_at         timestamptz NOT NULL DEFAULT now(),
    message_id          uuid,
    result              jsonb,
    CONSTRAINT visit_events_visit_fkey FOREIGN KEY (tenant_id, visit_id) REFERENCES visits (tenant_id, id),
    CONSTRAINT visit_events_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id),
    -- Phones retry: the same client event id from the same worker is the same event.
    CONSTRAINT visit_events_client_event_key UNIQUE (tenant_id, worker_id, client_event_id),
    CONSTRAINT visit_events_kind_check CHECK (kind IN ('check_in', 'check_out')),
    CONSTRAINT visit_events_method_check CHECK (method IN ('app', 'whatsapp', 'sms', 'manual')),
    CONSTRAINT visit_events_position_pair CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CONSTRAINT visit_events_accuracy_nonnegative CHECK (accuracy_m >= 0)
);
CREATE INDEX visit_events_visit_idx ON visit_events (tenant_id, visit_id, received_at);
CREATE INDEX visit_events_worker_idx ON visit_events (tenant_id, worker_id, received_at);
