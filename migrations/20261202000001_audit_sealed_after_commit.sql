-- Audit rows are linked into their chain just after their transaction commits, by a sealer,
-- instead of inside every commit.
--
-- Sealing at commit locked the tenant's chain head from the seal until the commit was on disk,
-- so every transaction that wrote an audit row waited for every other one in its tenant: under
-- load (each first message from a new number creates a contact) that wait was 16 ms a message,
-- the largest single cost of ingest. Rows are as safe while they wait: the guard lets nothing
-- but the seal change them, and the chain's order is simply the order they were sealed in.

DROP TRIGGER audit_log_seal ON audit_log;
DROP FUNCTION audit_log_seal();

-- Seals the committed, unsealed rows of every chain (at most `batch` per chain per call);
-- returns how many it sealed. Callers run it in a transaction of its own. A chain another
-- sealer holds is skipped: that sealer takes these rows too, or the next call does.
CREATE FUNCTION audit_seal(batch integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    chain uuid;
    head_seq bigint;
    head_hash bytea;
    r audit_log;
    sealed bigint := 0;
BEGIN
    FOR chain IN SELECT DISTINCT audit_chain_of(tenant_id) FROM audit_log WHERE hash IS NULL LOOP
        INSERT INTO audit_chain_heads (chain_id, seq, hash) VALUES (chain, 0, sha256(''::bytea))
            ON CONFLICT (chain_id) DO NOTHING;
        SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_heads
         WHERE chain_id = chain FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        FOR r IN SELECT * FROM audit_log
                  WHERE audit_chain_of(tenant_id) = chain AND hash IS NULL
                  ORDER BY created_at, id
                  LIMIT batch
        LOOP
            r.seq := head_seq + 1;
            r.prev_hash := head_hash;
            r.hash := sha256(head_hash || convert_to(audit_content(r), 'UTF8'));
            UPDATE audit_log SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash WHERE id = r.id;
            head_seq := r.seq;
            head_hash := r.hash;
            sealed := sealed + 1;
        END LOOP;
        UPDATE audit_chain_heads SET seq = head_seq, hash = head_hash WHERE chain_id = chain;
    END LOOP;
    RETURN sealed;
END
$$;
