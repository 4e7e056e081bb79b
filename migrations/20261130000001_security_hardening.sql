-- Security hardening: sign-in attempt limits, token roles, secrets kept out of message reads,
-- and check-in retries keyed by visit.

-- Every panel sign-in attempt, so limits hold across processes and restarts. An attempt counts
-- against its account and its client address until it succeeds; rows older than a day are pruned.
CREATE TABLE sign_in_attempts (
    id          uuid PRIMARY KEY DEFAULT uuid_generate_v7(),
    -- The organisation's short name and the email, lower-cased: "slug/email".
    account     text NOT NULL,
    address     inet,
    succeeded   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_attempts_account_idx ON sign_in_attempts (account, created_at) WHERE NOT succeeded;
CREATE INDEX sign_in_attempts_address_idx ON sign_in_attempts (address, created_at) WHERE NOT succeeded;
CREATE INDEX sign_in_attempts_created_idx ON sign_in_attempts (created_at);

-- API tokens have a role like panel users. Tokens made before roles existed could do everything,
-- so they stay admin; new tokens are coordinator unless made with --role admin.
ALTER TABLE api_tokens ADD COLUMN role text NOT NULL DEFAULT 'admin';
ALTER TABLE api_tokens ALTER COLUMN role SET DEFAULT 'coordinator';
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check CHECK (role IN ('coordinator', 'admin'));

-- A message that carries a secret (a sign-in code) keeps its readable text with the secret
-- masked in body/template_params; the real text lives here only until a provider accepts it.
ALTER TABLE messages ADD COLUMN secret_body text;
ALTER TABLE messages ADD COLUMN secret_template_params jsonb;

-- A client event id is unique per visit: the same id on another visit is another event.
ALTER TABLE visit_events DROP CONSTRAINT visit_events_client_event_key;
ALTER TABLE visit_events ADD CONSTRAINT visit_events_client_event_key
    UNIQUE (tenant_id, worker_id, visit_id, client_event_id);

-- Standing in on another caregiver's visit from the app is for caregivers the organisation
-- names, not for anyone with an app token.
ALTER TABLE workers ADD COLUMN may_cover boolean NOT NULL DEFAULT false;
