-- Acceptance timers: how long a worker has to accept, per priority, and what happened to each offer.

ALTER TABLE tenants
    ADD COLUMN acceptance_timeout_secs jsonb NOT NULL
        DEFAULT '{"urgent": 300, "high": 900, "medium": 3600, "low": 14400}',
    ADD CONSTRAINT tenants_acceptance_timeout_is_object CHECK (jsonb_typeof(acceptance_timeout_secs) = 'object');

ALTER TABLE work_order_offers
    ADD COLUMN reminded_at timestamptz,
    -- No answer in time: the work order went to the next candidate.
    ADD COLUMN expired_at timestamptz;

-- What coordinators must act on: shown in the panel until someone resolves it.
CREATE TABLE coordinator_alerts (
    id              uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    kind            text NOT NULL,
    work_order_id   uuid,
    message         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolved_by     uuid,
    CONSTRAINT coordinator_alerts_kind_check CHECK (kind IN ('no_worker_available', 'not_started', 'overdue')),
    CONSTRAINT coordinator_alerts_work_order_fkey FOREIGN KEY (tenant_id, work_order_id) REFERENCES work_orders (tenant_id, id),
    CONSTRAINT coordinator_alerts_user_fkey FOREIGN KEY (tenant_id, resolved_by) REFERENCES users (tenant_id, id)
);
CREATE INDEX coordinator_alerts_open_idx ON coordinator_alerts (tenant_id, created_at) WHERE resolved_at IS NULL;
