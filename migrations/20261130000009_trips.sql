-- Ambulance trips end to end: the steps the field needs beyond the document (at destination,
-- handover done), the NEMSIS eTimes each step stands for, positions per vehicle, the roster on
-- the trip, and the per-organisation dispatch settings.

ALTER TABLE trips
    DROP CONSTRAINT trips_status_check,
    ADD CONSTRAINT trips_status_check CHECK (status IN ('pending', 'assigned', 'en_route_to_pickup', 'at_pickup',
        'en_route_to_dropoff', 'at_destination', 'handover_done', 'completed', 'cancelled')),
    ADD COLUMN required_type text,
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN at_destination_at timestamptz,
    ADD COLUMN handover_at timestamptz,
    ADD COLUMN cancel_reason text,
    ADD CONSTRAINT trips_required_type_check CHECK (required_type IN ('basic_life_support', 'advanced_life_support',
        'patient_transport', 'neonatal', 'mobile_icu'));

CREATE INDEX trips_open_idx ON trips (tenant_id, created_at) WHERE status NOT IN ('completed', 'cancelled');

ALTER TABLE trip_status_events
    DROP CONSTRAINT trip_events_to_status_check,
    ADD CONSTRAINT trip_events_to_status_check CHECK (to_status IN ('pending', 'assigned', 'en_route_to_pickup', 'at_pickup',
        'en_route_to_dropoff', 'at_destination', 'handover_done', 'completed', 'cancelled')),
    -- The NEMSIS v3.5 eTimes element the step records (eTimes.03 unit notified … eTimes.12 back in service, eTimes.13 cancelled).
    ADD COLUMN nemsis_element text,
    ADD COLUMN message_id uuid,
    ADD COLUMN ambulance_id uuid,
    ADD CONSTRAINT trip_events_ambulance_fkey FOREIGN KEY (tenant_id, ambulance_id) REFERENCES ambulances (tenant_id, id);

-- Where each vehicle was seen, from crew messages and the app: the latest is on the ambulance.
CREATE TABLE ambulance_positions (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL,
    ambulance_id    uuid NOT NULL,
    worker_id       uuid,
    latitude        latitude NOT NULL,
    longitude       longitude NOT NULL,
    accuracy_m      double precision,
    source          text NOT NULL,
    reported_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ambulance_positions_ambulance_fkey FOREIGN KEY (tenant_id, ambulance_id) REFERENCES ambulances (tenant_id, id),
    CONSTRAINT ambulance_positions_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT ambulance_positions_source_check CHECK (source IN ('whatsapp', 'sms', 'app', 'api')),
    CONSTRAINT ambulance_positions_accuracy_nonnegative CHECK (accuracy_m >= 0)
);
CREATE INDEX ambulance_positions_idx ON ambulance_positions (tenant_id, ambulance_id, reported_at DESC);

ALTER TABLE tenants
    ADD COLUMN auto_dispatch_emergency boolean NOT NULL DEFAULT false,
    ADD COLUMN position_fresh_minutes integer NOT NULL DEFAULT 30,
    ADD COLUMN urban_speed_kmh integer NOT NULL DEFAULT 30,
    -- The escalation ladder: no acknowledgement, resend, then alert; at destination without a
    -- handover, warn the crew, then alert.
    ADD COLUMN trip_ack_resend_secs integer NOT NULL DEFAULT 60,
    ADD COLUMN trip_ack_alert_secs integer NOT NULL DEFAULT 120,
    ADD COLUMN trip_handover_warn_minutes integer NOT NULL DEFAULT 15,
    ADD COLUMN trip_handover_alert_minutes integer NOT NULL DEFAULT 30,
    -- NFPA 1710-style targets the response-time report measures against.
    ADD COLUMN trip_turnout_target_secs integer NOT NULL DEFAULT 60,
    ADD COLUMN trip_response_target_secs integer NOT NULL DEFAULT 480,
    ADD CONSTRAINT tenants_trip_ack_order CHECK (trip_ack_resend_secs > 0 AND trip_ack_alert_secs > trip_ack_resend_secs),
    ADD CONSTRAINT tenants_trip_handover_order CHECK (trip_handover_warn_minutes > 0 AND trip_handover_alert_minutes > trip_handover_warn_minutes),
    ADD CONSTRAINT tenants_position_fresh_range CHECK (position_fresh_minutes BETWEEN 1 AND 1440),
    ADD CONSTRAINT tenants_urban_speed_range CHECK (urban_speed_kmh BETWEEN 5 AND 150);

-- A declined trip and a vehicle problem are the coordinators' to act on.
ALTER TABLE coordinator_alerts
    ADD COLUMN trip_id uuid,
    ADD CONSTRAINT coordinator_alerts_trip_fkey FOREIGN KEY (tenant_id, trip_id) REFERENCES trips (tenant_id, id),
    DROP CONSTRAINT coordinator_alerts_kind_check,
    ADD CONSTRAINT coordinator_alerts_kind_check CHECK (kind IN ('no_worker_available', 'not_started', 'overdue', 'visit_late',
        'complaint_contact_overdue', 'complaint_resolution_overdue', 'trip_declined', 'vehicle_problem',
        'trip_not_acknowledged', 'handover_delay'));
