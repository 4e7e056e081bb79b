-- Electronic visit verification: the caregivers' app sign-in, and the exceptions a coordinator
-- must look at.

-- A 6-digit code sent by message; only its SHA-256 is kept. Expires in 10 minutes, 5 attempts.
CREATE TABLE app_login_codes (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    worker_id       uuid NOT NULL,
    code_hash       bytea NOT NULL,
    requested_from  inet,
    attempts        integer NOT NULL DEFAULT 0,
    expires_at      timestamptz NOT NULL,
    consumed_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT app_login_codes_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT app_login_codes_attempts_range CHECK (attempts BETWEEN 0 AND 5)
);
CREATE INDEX app_login_codes_worker_idx ON app_login_codes (tenant_id, worker_id, created_at);

-- Every sign-in request by address, known number or not, so guessing numbers is rate-limited too.
CREATE TABLE app_login_requests (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    requested_from  inet NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_login_requests_address_idx ON app_login_requests (requested_from, created_at);

-- The app's bearer tokens, tied to one worker; only the SHA-256 is kept.
CREATE TABLE app_tokens (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    worker_id       uuid NOT NULL,
    token_hash      bytea NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    last_used_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT app_tokens_hash_key UNIQUE (token_hash),
    CONSTRAINT app_tokens_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id)
);
CREATE INDEX app_tokens_worker_idx ON app_tokens (tenant_id, worker_id) WHERE revoked_at IS NULL;

-- What did not go by the book on a visit, until a coordinator resolves it.
CREATE TABLE visit_exceptions (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    visit_id            uuid NOT NULL,
    event_id            uuid,
    code                text NOT NULL,
    detail              text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    resolved_at         timestamptz,
    resolved_by         uuid,
    resolution_code     text,
    resolution_note     text,
    CONSTRAINT visit_exceptions_visit_fkey FOREIGN KEY (tenant_id, visit_id) REFERENCES visits (tenant_id, id),
    CONSTRAINT visit_exceptions_event_fkey FOREIGN KEY (event_id) REFERENCES visit_events (id),
    CONSTRAINT visit_exceptions_user_fkey FOREIGN KEY (tenant_id, resolved_by) REFERENCES users (tenant_id, id),
    CONSTRAINT visit_exceptions_code_check CHECK (code IN ('outside_geofence', 'poor_accuracy', 'no_position',
        'early_check_in', 'late_check_in', 'wrong_caregiver', 'no_check_out', 'impossible_journey',
        'device_time_skew', 'late', 'missed')),
    CONSTRAINT visit_exceptions_resolution_check CHECK (resolution_code IN ('confirmed_with_patient',
        'confirmed_with_caregiver', 'gps_problem', 'schedule_changed', 'substitute_approved', 'corrected_times',
        'not_a_problem', 'other')),
    CONSTRAINT visit_exceptions_resolved_together CHECK ((resolved_at IS NULL) = (resolution_code IS NULL))
);
CREATE INDEX visit_exceptions_open_idx ON visit_exceptions (tenant_id, created_at) WHERE resolved_at IS NULL;
CREATE INDEX visit_exceptions_visit_idx ON visit_exceptions (tenant_id, visit_id);

-- No check-in 30 minutes after the start: the visit is marked late (it can still be checked in).
ALTER TABLE visits ADD COLUMN late_at timestamptz;
-- The event that a visit's check-in or check-out came from.
ALTER TABLE visit_events ADD COLUMN event_time timestamptz;

-- Alerts about visits as well as work orders.
ALTER TABLE coordinator_alerts
    ADD COLUMN visit_id uuid,
    ADD CONSTRAINT coordinator_alerts_visit_fkey FOREIGN KEY (tenant_id, visit_id) REFERENCES visits (tenant_id, id),
    DROP CONSTRAINT coordinator_alerts_kind_check,
    ADD CONSTRAINT coordinator_alerts_kind_check CHECK (kind IN ('no_worker_available', 'not_started', 'overdue', 'visit_late'));
CREATE UNIQUE INDEX coordinator_alerts_visit_once_key ON coordinator_alerts (tenant_id, visit_id, kind)
    WHERE visit_id IS NOT NULL;

-- Recurring visits are generated ahead; a cancelled one is not generated again.
ALTER TABLE visits ADD COLUMN cancelled_at timestamptz;
