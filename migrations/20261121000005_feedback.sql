-- Patient feedback, complaints, and what the organisation did about them.

CREATE TABLE feedback (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    patient_id      uuid,
    contact_id      uuid,
    anonymous       boolean NOT NULL DEFAULT false,
    visit_id        uuid,
    trip_id         uuid,
    work_order_id   uuid,
    worker_id       uuid,
    feedback_type   text NOT NULL DEFAULT 'general',
    rating          smallint,
    comments        text,
    status          text NOT NULL DEFAULT 'new',
    channel         text NOT NULL,
    message_id      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feedback_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT feedback_patient_fkey FOREIGN KEY (tenant_id, patient_id) REFERENCES patients (tenant_id, id),
    CONSTRAINT feedback_contact_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT feedback_visit_fkey FOREIGN KEY (tenant_id, visit_id) REFERENCES visits (tenant_id, id),
    CONSTRAINT feedback_trip_fkey FOREIGN KEY (tenant_id, trip_id) REFERENCES trips (tenant_id, id),
    CONSTRAINT feedback_work_order_fkey FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id),
    CONSTRAINT feedback_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT feedback_type_check CHECK (feedback_type IN ('general', 'service_rating', 'compliment', 'suggestion', 'survey')),
    CONSTRAINT feedback_rating_range CHECK (rating BETWEEN 1 AND 5),
    CONSTRAINT feedback_status_check CHECK (status IN ('new', 'reviewed', 'responded', 'closed')),
    CONSTRAINT feedback_channel_check CHECK (channel IN ('sms', 'whatsapp', 'panel', 'api', 'app')),
    CONSTRAINT feedback_anonymous_has_no_patient CHECK (NOT anonymous OR patient_id IS NULL)
);
CREATE INDEX feedback_tenant_status_idx ON feedback (tenant_id, status, created_at);
CREATE INDEX feedback_worker_idx ON feedback (tenant_id, worker_id);
CREATE TRIGGER feedback_updated_at BEFORE UPDATE ON feedback FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE complaints (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    reference           text NOT NULL,
    feedback_id         uuid,
    patient_id          uuid,
    contact_id          uuid,
    visit_id            uuid,
    trip_id             uuid,
    work_order_id       uuid,
    worker_id           uuid,
    complaint_type      text NOT NULL DEFAULT 'other',
    description         text NOT NULL,
    severity            text NOT NULL DEFAULT 'medium',
    status              text NOT NULL DEFAULT 'open',
    assigned_user_id    uuid,
    resolution          text,
    due_by              timestamptz,
    resolved_at         timestamptz,
    channel             text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT complaints_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT complaints_tenant_reference_key UNIQUE (tenant_id, reference),
    CONSTRAINT complaints_feedback_fkey FOREIGN KEY (tenant_id, feedback_id) REFERENCES feedback (tenant_id, id),
    CONSTRAINT complaints_patient_fkey FOREIGN KEY (tenant_id, patient_id) REFERENCES patients (tenant_id, id),
    CONSTRAINT complaints_contact_fkey FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    CONSTRAINT complaints_visit_fkey FOREIGN KEY (tenant_id, visit_id) REFERENCES visits (tenant_id, id),
    CONSTRAINT complaints_trip_fkey FOREIGN KEY (tenant_id, trip_id) REFERENCES trips (tenant_id, id),
    CONSTRAINT complaints_work_order_fkey FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id),
    CONSTRAINT complaints_worker_fkey FOREIGN KEY (tenant_id, worker_id) REFERENCES workers (tenant_id, id),
    CONSTRAINT complaints_assigned_user_fkey FOREIGN KEY (tenant_id, assigned_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT complaints_type_check CHECK (complaint_type IN ('care_quality', 'staff_conduct', 'timeliness', 'communication', 'facility', 'billing', 'safety', 'other')),
    CONSTRAINT complaints_severity_check CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT complaints_status_check CHECK (status IN ('open', 'investigating', 'resolved', 'closed')),
    CONSTRAINT complaints_channel_check CHECK (channel IN ('sms', 'whatsapp', 'panel', 'api', 'app')),
    CONSTRAINT complaints_description_present CHECK (length(btrim(description)) > 0)
);
CREATE INDEX complaints_tenant_status_idx ON complaints (tenant_id, status, due_by);
CREATE TRIGGER complaints_updated_at BEFORE UPDATE ON complaints FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE feedback_responses (
    id                  uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id           uuid NOT NULL,
    feedback_id         uuid NOT NULL,
    responder_user_id   uuid,
    body                text NOT NULL,
    channel             text NOT NULL,
    message_id          uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feedback_responses_feedback_fkey FOREIGN KEY (tenant_id, feedback_id) REFERENCES feedback (tenant_id, id),
    CONSTRAINT feedback_responses_user_fkey FOREIGN KEY (tenant_id, responder_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT feedback_responses_channel_check CHECK (channel IN ('sms', 'whatsapp', 'panel', 'api', 'email', 'phone'))
);
CREATE INDEX feedback_responses_feedback_idx ON feedback_responses (tenant_id, feedback_id);

CREATE TABLE complaint_actions (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL,
    complaint_id    uuid NOT NULL,
    action_type     text NOT NULL,
    description     text NOT NULL,
    actor_user_id   uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT complaint_actions_complaint_fkey FOREIGN KEY (tenant_id, complaint_id) REFERENCES complaints (tenant_id, id),
    CONSTRAINT complaint_actions_user_fkey FOREIGN KEY (tenant_id, actor_user_id) REFERENCES users (tenant_id, id),
    CONSTRAINT complaint_actions_type_check CHECK (action_type IN ('note', 'assigned', 'contacted', 'investigated', 'escalated', 'resolved', 'closed', 'reopened'))
);
CREATE INDEX complaint_actions_complaint_idx ON complaint_actions (tenant_id, complaint_id, created_at);
