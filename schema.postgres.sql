-- veneer's database on PostgreSQL (`veneer serve --db postgres://…`), the same tables and
-- guarantees as schema.sql with PostgreSQL's types. Applied by src/store/postgres/mod.rs inside
-- one transaction (under an advisory lock, so nodes starting together apply it once) to a
-- database without `veneer_schema`, which then records POSTGRES_SCHEMA_VERSION.
-- Ids are UUIDv7 (time-ordered, so `ORDER BY id` is creation order and cursor pagination is
-- `id < $1`). JSON documents are kept as the text the service wrote (jsonb would reorder keys).

CREATE TABLE veneer_schema (
    version integer NOT NULL
);

CREATE TABLE organizations (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL,
    -- Cached bucket balances: only the ledger trigger below may change them (the guard
    -- trigger refuses any other write), so they always equal the ledger sums; the CHECKs make
    -- an overdraft abort its transaction.
    subscription_credits bigint NOT NULL DEFAULT 0 CHECK (subscription_credits >= 0),
    purchased_credits    bigint NOT NULL DEFAULT 0 CHECK (purchased_credits >= 0),
    created_at           timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES organizations(id),
    -- `vnr_` + 8 characters, to find candidate rows; the secret is stored only as its SHA-256.
    prefix     text NOT NULL,
    hash       bytea NOT NULL UNIQUE,
    scopes     text NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX api_keys_prefix ON api_keys(prefix);
CREATE INDEX api_keys_org ON api_keys(org_id, id);

CREATE TABLE variants (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations(id),
    name          text NOT NULL,
    vh            text NOT NULL,
    vl            text,
    vl_chain_type text CHECK (vl_chain_type IN ('kappa', 'lambda')),
    scfv          text,
    created_at    timestamptz NOT NULL,
    CHECK ((vl IS NULL) = (vl_chain_type IS NULL))
);
CREATE INDEX variants_org ON variants(org_id, id);

-- One table for every job kind; the pending rows are the queue, claimed by any node with
-- FOR UPDATE SKIP LOCKED.
CREATE TABLE jobs (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id),
    kind        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'canceled')),
    stage       text,
    inputs      text NOT NULL,
    snapshot    text NOT NULL,
    credit_cost bigint NOT NULL CHECK (credit_cost >= 0),
    created_at  timestamptz NOT NULL,
    started_at  timestamptz,
    finished_at timestamptz,
    results     text,
    parental    text,
    error       text,
    duration_ms bigint,
    -- How many times the job was claimed; every write of a running job is guarded by
    -- `status = 'running' AND attempt = <the claimer's>`, which fences out a slow node.
    attempt     bigint NOT NULL DEFAULT 0,
    -- The node holding a running job and until when; its heartbeat renews the lease, and any
    -- node puts a job whose lease ran out back to pending.
    lease_owner      text,
    lease_expires_at timestamptz,
    -- When a client asked to cancel the running job (on any node).
    cancel_requested_at timestamptz,
    CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK ((status IN ('completed', 'failed', 'canceled')) = (finished_at IS NOT NULL))
);
CREATE INDEX jobs_pending ON jobs(org_id, id) WHERE status = 'pending';
CREATE INDEX jobs_running ON jobs(org_id) WHERE status = 'running';
CREATE INDEX jobs_leases ON jobs(lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_org ON jobs(org_id, id);
CREATE INDEX jobs_org_kind ON jobs(org_id, kind, id);

CREATE TABLE credit_ledger (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES organizations(id),
    bucket     text NOT NULL CHECK (bucket IN ('subscription', 'purchased')),
    delta      bigint NOT NULL CHECK (delta <> 0),
    reason     text NOT NULL CHECK (reason IN ('grant', 'debit', 'refund')),
    job_id     uuid REFERENCES jobs(id),
    created_at timestamptz NOT NULL,
    CHECK ((reason = 'grant') = (job_id IS NULL)),
    CHECK ((reason = 'debit') = (delta < 0))
);
CREATE INDEX credit_ledger_org ON credit_ledger(org_id, id);
-- A job is debited at most once per bucket and refunded at most once.
CREATE UNIQUE INDEX credit_ledger_one_debit ON credit_ledger(job_id, bucket) WHERE reason = 'debit';
CREATE UNIQUE INDEX credit_ledger_one_refund ON credit_ledger(job_id) WHERE reason = 'refund';

CREATE FUNCTION veneer_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the credit ledger is append-only';
END $$;
CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION veneer_ledger_append_only();
CREATE TRIGGER credit_ledger_no_truncate BEFORE TRUNCATE ON credit_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION veneer_ledger_append_only();

CREATE FUNCTION veneer_ledger_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE organizations
       SET subscription_credits = subscription_credits
               + CASE WHEN NEW.bucket = 'subscription' THEN NEW.delta ELSE 0 END,
           purchased_credits = purchased_credits
               + CASE WHEN NEW.bucket = 'purchased' THEN NEW.delta ELSE 0 END
     WHERE id = NEW.org_id;
    RETURN NULL;
END $$;
CREATE TRIGGER credit_ledger_apply AFTER INSERT ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION veneer_ledger_apply();

-- Balance = ledger sum: an organization starts at zero and its balances move only from inside
-- the ledger trigger (trigger depth > 1), never by a direct write.
CREATE FUNCTION veneer_balance_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.subscription_credits <> 0 OR NEW.purchased_credits <> 0 THEN
            RAISE EXCEPTION 'an organization starts with no credits; grant them through the ledger';
        END IF;
    ELSIF (NEW.subscription_credits, NEW.purchased_credits)
          IS DISTINCT FROM (OLD.subscription_credits, OLD.purchased_credits)
          AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'balances change only through the credit ledger';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER organizations_balance_guard BEFORE INSERT OR UPDATE ON organizations
    FOR EACH ROW EXECUTE FUNCTION veneer_balance_guard();

-- Every node LISTENs on `veneer`: a stored cancel request, a job reaching its end and a
-- changed operator setting are announced in the transaction that makes them (delivered only
-- if it commits). A notification is a wake-up, never the record: nodes also re-read.
CREATE FUNCTION veneer_notify_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.cancel_requested_at IS NOT NULL AND OLD.cancel_requested_at IS NULL
       AND NEW.status = 'running' THEN
        PERFORM pg_notify('veneer', 'cancel:' || NEW.id::text);
    END IF;
    IF NEW.status IN ('completed', 'failed', 'canceled')
       AND OLD.status NOT IN ('completed', 'failed', 'canceled') THEN
        PERFORM pg_notify('veneer', 'ended:' || NEW.id::text);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify AFTER UPDATE OF status, cancel_requested_at ON jobs
    FOR EACH ROW EXECUTE FUNCTION veneer_notify_job();

-- Stripe-style idempotency keys, scoped to (organization, method, route).
CREATE TABLE idempotency_keys (
    org_id            uuid NOT NULL REFERENCES organizations(id),
    method            text NOT NULL,
    route             text NOT NULL,
    key               text NOT NULL,
    fingerprint       text NOT NULL,
    -- NULL while the first request is in flight.
    response_status   integer,
    response_body     text,
    response_location text,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (org_id, method, route, key),
    CHECK ((response_status IS NULL) = (response_body IS NULL))
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys(expires_at);

-- Write requests per organization per UTC day, shared by every node.
CREATE TABLE daily_writes (
    org_id uuid NOT NULL REFERENCES organizations(id),
    day    date NOT NULL,
    count  bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (org_id, day)
);

-- Operator switches (`queue_paused`), announced to every node when they change.
CREATE TABLE settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE FUNCTION veneer_notify_setting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('veneer', 'changed');
    RETURN NULL;
END $$;
CREATE TRIGGER settings_notify AFTER INSERT OR UPDATE ON settings
    FOR EACH ROW EXECUTE FUNCTION veneer_notify_setting();
