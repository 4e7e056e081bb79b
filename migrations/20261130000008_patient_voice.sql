-- Patients' voice: the survey after a service, feedback and complaints people start themselves,
-- complaint handling with deadlines on a working-day calendar, and answering anonymous people
-- through a relay.

-- When surveys go, per organisation (the defaults are the NHS Friends and Family Test practice).
ALTER TABLE tenants
    ADD COLUMN survey_delay_minutes integer NOT NULL DEFAULT 120,
    ADD COLUMN survey_quiet_from time NOT NULL DEFAULT '20:00',
    ADD COLUMN survey_quiet_until time NOT NULL DEFAULT '08:00',
    ADD COLUMN survey_min_days_between integer NOT NULL DEFAULT 30,
    ADD COLUMN survey_expiry_hours integer NOT NULL DEFAULT 48,
    ADD CONSTRAINT tenants_survey_delay_range CHECK (survey_delay_minutes BETWEEN 0 AND 10080),
    ADD CONSTRAINT tenants_survey_min_days_range CHECK (survey_min_days_between BETWEEN 0 AND 365),
    ADD CONSTRAINT tenants_survey_expiry_range CHECK (survey_expiry_hours BETWEEN 1 AND 720);

-- Days the organisation does not work, beside Saturdays and Sundays: complaint deadlines skip them.
CREATE TABLE tenant_holidays (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    day         date NOT NULL,
    name        text,
    CONSTRAINT tenant_holidays_pkey PRIMARY KEY (tenant_id, day)
);

-- A trip after which no survey goes (a death, for instance).
ALTER TABLE trips ADD COLUMN sensitive boolean NOT NULL DEFAULT false;

-- One survey per service and person: scheduled when the service ends, sent when its time comes
-- (or skipped, saying why), answered with a Friends and Family Test code, then a comment.
CREATE TABLE surveys (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    contact_id      uuid NOT NULL,
    patient_id      uuid,
    subject         text NOT NULL,
    visit_id        uuid,
    trip_id         uuid,
    work_order_id   uuid,
    complaint_id    uuid,
    worker_id       uuid,
    service         text NOT NULL,
    status          text NOT NULL DEFAULT 'scheduled',
    skip_reason     text,
    due_at          timestamptz NOT NULL,
    sent_at         timestamptz,
    expires_at      timestamptz,
    answered_at     timestamptz,
    fft_code        smallint,
    feedback_id     uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT surveys_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT surveys_contact_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT surveys_patient_fkey FOREIGN KEY (tenant_id, patient_id) REFERENCES patients (tenant_id, id),
    CONSTRAINT surveys_visit_fkey FOREIGN KEY (tenant_id, visit_id) REFERENCES visits (tenant_id, id),
    CONSTRAINT surveys_trip_fkey FOREIGN KEY (tenant_id, trip_id) REFERENCES trips (tenant_id, id),
    CONSTRAINT surveys_work_order_fkey FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id),
    CONSTRAINT surveys_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT surveys_subject_check CHECK (subject IN ('visit', 'trip', 'work_order', 'complaint')),
    CONSTRAINT surveys_subject_matches CHECK (
        (subject = 'visit') = (visit_id IS NOT NULL) AND (subject = 'trip') = (trip_id IS NOT NULL)
        AND (subject = 'work_order') = (work_order_id IS NOT NULL) AND (subject = 'complaint') = (complaint_id IS NOT NULL)),
    CONSTRAINT surveys_status_check CHECK (status IN ('scheduled', 'sent', 'answered', 'commented', 'expired', 'skipped')),
    CONSTRAINT surveys_skip_reason_check CHECK ((status = 'skipped') = (skip_reason IS NOT NULL)),
    CONSTRAINT surveys_fft_code_range CHECK (fft_code BETWEEN 1 AND 6)
);
CREATE UNIQUE INDEX surveys_visit_key ON surveys (tenant_id, visit_id, contact_id) WHERE visit_id IS NOT NULL;
CREATE UNIQUE INDEX surveys_trip_key ON surveys (tenant_id, trip_id, contact_id) WHERE trip_id IS NOT NULL;
CREATE UNIQUE INDEX surveys_work_order_key ON surveys (tenant_id, work_order_id, contact_id) WHERE work_order_id IS NOT NULL;
CREATE INDEX surveys_contact_idx ON surveys (tenant_id, contact_id, sent_at DESC);
CREATE TRIGGER surveys_updated_at BEFORE UPDATE ON surveys FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The survey's answer is feedback: the FFT code beside the document's 1-5 rating (6 - code).
ALTER TABLE feedback
    ADD COLUMN fft_code smallint,
    ADD COLUMN survey_id uuid,
    ADD COLUMN service text,
    ADD COLUMN relay_token text,
    ADD CONSTRAINT feedback_fft_code_range CHECK (fft_code BETWEEN 1 AND 6),
    ADD CONSTRAINT feedback_rating_follows_fft CHECK (fft_code IS NULL OR rating IS NOT DISTINCT FROM CASE WHEN fft_code = 6 THEN NULL ELSE 6 - fft_code END),
    ADD CONSTRAINT feedback_survey_fkey FOREIGN KEY (tenant_id, survey_id) REFERENCES surveys (tenant_id, id),
    ADD CONSTRAINT feedback_anonymous_has_no_contact CHECK (NOT anonymous OR contact_id IS NULL),
    ADD CONSTRAINT feedback_relay_only_anonymous CHECK (relay_token IS NULL OR anonymous);
CREATE UNIQUE INDEX feedback_survey_key ON feedback (tenant_id, survey_id) WHERE survey_id IS NOT NULL;
CREATE UNIQUE INDEX feedback_relay_token_key ON feedback (relay_token) WHERE relay_token IS NOT NULL;
-- Work-order ratings are surveys now: one mechanism.
DROP INDEX feedback_work_order_rating_key;
ALTER TABLE surveys ADD CONSTRAINT surveys_feedback_fkey FOREIGN KEY (tenant_id, feedback_id) REFERENCES feedback (tenant_id, id);

-- Who an anonymous person is, kept apart from everything staff can read: a reply to the
-- feedback goes through the service to this contact, by the token alone.
CREATE TABLE feedback_relays (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    token       text NOT NULL,
    contact_id  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feedback_relays_pkey PRIMARY KEY (tenant_id, token),
    CONSTRAINT feedback_relays_contact_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
);

-- Complaints: two deadlines (first human contact, resolution), the clock's warnings, reopening.
ALTER TABLE complaints
    ADD COLUMN survey_id uuid,
    ADD COLUMN first_contact_due_at timestamptz,
    ADD COLUMN first_contacted_at timestamptz,
    ADD COLUMN resolution_due_at timestamptz,
    ADD COLUMN first_contact_warned_at timestamptz,
    ADD COLUMN resolution_warned_at timestamptz,
    ADD CONSTRAINT complaints_survey_fkey FOREIGN KEY (tenant_id, survey_id) REFERENCES surveys (tenant_id, id),
    DROP CONSTRAINT complaints_status_check,
    ADD CONSTRAINT complaints_status_check CHECK (status IN ('open', 'investigating', 'resolved', 'closed', 'reopened'));
ALTER TABLE surveys ADD CONSTRAINT surveys_complaint_fkey FOREIGN KEY (tenant_id, complaint_id) REFERENCES complaints (tenant_id, id);
-- One open case per person: later messages attach to it.
CREATE UNIQUE INDEX complaints_one_open_per_contact ON complaints (tenant_id, contact_id)
    WHERE contact_id IS NOT NULL AND status IN ('open', 'investigating', 'reopened');

ALTER TABLE complaint_actions
    ADD COLUMN message_id uuid,
    DROP CONSTRAINT complaint_actions_type_check,
    ADD CONSTRAINT complaint_actions_type_check CHECK (action_type IN (
        'note', 'assigned', 'contacted', 'investigated', 'escalated', 'resolved', 'closed', 'reopened',
        'opened', 'complainant_wrote', 'severity_changed'));

ALTER TABLE feedback_responses ADD COLUMN relayed boolean NOT NULL DEFAULT false;

-- Complaint deadlines ride the alert ladder.
ALTER TABLE coordinator_alerts
    ADD COLUMN complaint_id uuid,
    ADD CONSTRAINT coordinator_alerts_complaint_fkey FOREIGN KEY (tenant_id, complaint_id) REFERENCES complaints (tenant_id, id),
    DROP CONSTRAINT coordinator_alerts_kind_check,
    ADD CONSTRAINT coordinator_alerts_kind_check CHECK (kind IN ('no_worker_available', 'not_started', 'overdue', 'visit_late',
        'complaint_contact_overdue', 'complaint_resolution_overdue'));
CREATE UNIQUE INDEX coordinator_alerts_complaint_once_key ON coordinator_alerts (tenant_id, complaint_id, kind)
    WHERE complaint_id IS NOT NULL;
