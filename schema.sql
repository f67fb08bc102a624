-- veneer's whole database. Applied by src/store/db.rs inside one transaction to a new database
-- (`PRAGMA user_version` 0), which then sets SCHEMA_VERSION; a database made by an earlier
-- version is brought up to date by the steps in db.rs's UPGRADES instead.
-- Ids are UUIDv7 text (sortable by creation time, so `ORDER BY id` is creation order and
-- cursor pagination is `id < ?`). Timestamps are RFC 3339 text in UTC (`+00:00`).

CREATE TABLE organizations (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    -- Cached bucket balances. Only the ledger trigger below changes them, so they always
    -- equal the ledger sums; the CHECKs make an overdraft abort its transaction.
    subscription_credits INTEGER NOT NULL DEFAULT 0 CHECK (subscription_credits >= 0),
    purchased_credits    INTEGER NOT NULL DEFAULT 0 CHECK (purchased_credits >= 0),
    created_at           TEXT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    -- The first characters of the key (`vnr_` + 8), shown to operators and used to find
    -- candidate rows; the secret itself is only ever stored as its SHA-256.
    prefix     TEXT NOT NULL,
    hash       BLOB NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX api_keys_prefix ON api_keys(prefix);
CREATE INDEX api_keys_org ON api_keys(org_id, id);

CREATE TABLE variants (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations(id),
    name          TEXT NOT NULL,
    vh            TEXT NOT NULL,
    -- NULL for a single-domain antibody (VHH), with its chain type.
    vl            TEXT,
    vl_chain_type TEXT CHECK (vl_chain_type IN ('kappa', 'lambda')),
    -- How a variant registered from one scFv sequence was split (JSON), else NULL.
    scfv          TEXT,
    created_at    TEXT NOT NULL,
    CHECK ((vl IS NULL) = (vl_chain_type IS NULL))
);
CREATE INDEX variants_org ON variants(org_id, id);

-- One table for every job kind; the pending rows are the queue.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'canceled')),
    stage       TEXT,
    -- The submit body as the client sees it echoed (`inputs`).
    inputs      TEXT NOT NULL,
    -- What the pipeline runs on, copied at submit so deleting a variant never changes a job.
    snapshot    TEXT NOT NULL,
    credit_cost INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    -- The one terminal timestamp: completed_at, failed_at and canceled_at are derived from it.
    finished_at TEXT,
    -- JSON: the list of strategy results, and the parental variant's own report beside it.
    results     TEXT,
    parental    TEXT,
    -- JSON problem object, only when failed.
    error       TEXT,
    -- Milliseconds the pipeline took, for the duration histogram; NULL unless completed.
    duration_ms INTEGER,
    -- How many times the job was claimed. Every write of a running job is guarded by
    -- `status = 'running' AND attempt = <the claimer's>`, so a holder that lost the job
    -- (rescued after its lease ran out) can change nothing.
    attempt     INTEGER NOT NULL DEFAULT 0,
    -- The runner holding a running job, and until when (unix milliseconds; renewed by its
    -- heartbeat).
    lease_owner TEXT,
    lease_expires_at INTEGER,
    -- When a client asked to cancel the running job; the holder stops it and refunds.
    cancel_requested_at TEXT
);
-- The queue: the pending jobs and the running ones, each in an index of its own that holds
-- only them (partial), so a job that ends leaves its index and enters none — a cancel or a
-- completion deletes one entry instead of moving it into a range of ended jobs that only
-- grows. SQLite uses a partial index only for a query that states its condition as written
-- here (`status = 'pending'`), which every queue query does.
CREATE INDEX jobs_pending ON jobs(org_id, id) WHERE status = 'pending';
CREATE INDEX jobs_running ON jobs(org_id, id) WHERE status = 'running';
CREATE INDEX jobs_org ON jobs(org_id, id);

CREATE TABLE credit_ledger (
    id         TEXT NOT NULL,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    bucket     TEXT NOT NULL CHECK (bucket IN ('subscription', 'purchased')),
    delta      INTEGER NOT NULL CHECK (delta <> 0),
    reason     TEXT NOT NULL CHECK (reason IN ('grant', 'debit', 'refund')),
    job_id     TEXT REFERENCES jobs(id),
    created_at TEXT NOT NULL,
    CHECK ((reason = 'grant') = (job_id IS NULL)),
    CHECK ((reason = 'debit') = (delta < 0)),
    -- Ids are UUIDv7, unique by construction. Keyed by organization first and stored in that
    -- key (WITHOUT ROWID), one B-tree serves both the row and an organization's ledger in
    -- order, where a rowid table needed three (the table, its id index, an org index).
    PRIMARY KEY (org_id, id)
) WITHOUT ROWID;
-- A job is debited at most once per bucket and refunded at most once: the database, not the
-- code paths racing to refund, is what makes "exactly once" true.
CREATE UNIQUE INDEX credit_ledger_one_debit ON credit_ledger(job_id, bucket) WHERE reason = 'debit';
CREATE UNIQUE INDEX credit_ledger_one_refund ON credit_ledger(job_id) WHERE reason = 'refund';

CREATE TRIGGER credit_ledger_append_only_update BEFORE UPDATE ON credit_ledger
BEGIN
    SELECT RAISE(ABORT, 'the credit ledger is append-only');
END;
CREATE TRIGGER credit_ledger_append_only_delete BEFORE DELETE ON credit_ledger
BEGIN
    SELECT RAISE(ABORT, 'the credit ledger is append-only');
END;
CREATE TRIGGER credit_ledger_apply AFTER INSERT ON credit_ledger
BEGIN
    UPDATE organizations
       SET subscription_credits = subscription_credits
               + CASE WHEN NEW.bucket = 'subscription' THEN NEW.delta ELSE 0 END,
           purchased_credits = purchased_credits
               + CASE WHEN NEW.bucket = 'purchased' THEN NEW.delta ELSE 0 END
     WHERE id = NEW.org_id;
END;

-- Stripe-style idempotency keys, scoped to (organization, method, route).
CREATE TABLE idempotency_keys (
    org_id          TEXT NOT NULL REFERENCES organizations(id),
    method          TEXT NOT NULL,
    route           TEXT NOT NULL,
    key             TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    -- NULL while the first request is in flight.
    response_status INTEGER,
    response_body   TEXT,
    response_location TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, method, route, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys(expires_at);

-- Write requests per organization per UTC day, so a restart does not reset the quota.
CREATE TABLE daily_writes (
    org_id TEXT NOT NULL REFERENCES organizations(id),
    day    TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (org_id, day)
) WITHOUT ROWID; -- the row is its key: one B-tree, not a table and its key's index

-- Operator switches shared between the CLI and a running server (`queue_paused`).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
