//! The rows and answers the store's operations trade in, the same for every backend: plain
//! Rust values (ids and timestamps as the API's strings), never a database type.

#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub subscription: i64,
    pub purchased: i64,
    pub created_at: String,
}

impl Organization {
    pub fn balance(&self) -> i64 {
        self.subscription + self.purchased
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub org_id: String,
    pub prefix: String,
    pub hash: Vec<u8>,
    pub scopes: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A key to store: its public prefix, the SHA-256 of its secret and its scopes.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub prefix: String,
    pub hash: Vec<u8>,
    pub scopes: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Subscription,
    Purchased,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Subscription => "subscription",
            Bucket::Purchased => "purchased",
        }
    }

    pub fn parse(s: &str) -> Option<Bucket> {
        match s {
            "subscription" => Some(Bucket::Subscription),
            "purchased" => Some(Bucket::Purchased),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub id: String,
    pub org_id: String,
    pub bucket: String,
    pub delta: i64,
    pub reason: String,
    pub job_id: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VariantRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub vh: String,
    /// `None` for a single-domain antibody.
    pub vl: Option<String>,
    pub vl_chain_type: Option<String>,
    /// The split of a variant registered from one scFv sequence, as JSON.
    pub scfv: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Running,
    Completed,
    Failed,
    Canceled,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Canceled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.name() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Canceled)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub status: Status,
    pub stage: Option<String>,
    pub inputs: String,
    pub snapshot: String,
    pub credit_cost: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub results: Option<String>,
    pub parental: Option<String>,
    pub error: Option<String>,
}

/// A job this node holds: the row as claimed and the attempt number that fences every write
/// it makes (`status = 'running' AND attempt = <this>`).
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: JobRow,
    pub attempt: i64,
}

/// A running job this node still holds, as its heartbeat found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub job_id: String,
    pub attempt: i64,
    pub cancel_requested: bool,
}

/// What a guarded stage write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageWrite {
    /// Written: the job is still this attempt's and nobody asked to cancel it.
    Recorded,
    /// A cancel was requested (stored on the row); the job must stop.
    CancelRequested,
    /// The job is no longer this attempt's (rescued, or ended by someone else): stop, write
    /// nothing more.
    Lost,
}

/// What a cancel request decided, in the transaction that read the job.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelDecision {
    NotFound,
    /// It was pending: now canceled and refunded; the job as it now stands.
    Canceled(Box<JobRow>),
    /// It is running: the request is stored on the row (and announced to every node); the
    /// node holding it stops it.
    Requested,
    /// It is running in a stage that refuses cancellation.
    Unavailable(String),
    AlreadyTerminal(Status),
}

/// Jobs put back or ended by a rescue of expired leases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Back to `pending`, to run again.
    pub requeued: usize,
    /// Ended `canceled` and refunded: a cancel had been requested before the holder died.
    pub canceled: usize,
}

/// A stored idempotency key's scope: the key means one thing per organization, method and route.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyScope {
    pub org_id: String,
    pub method: String,
    pub route: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

/// An idempotency key being used: where it lives, the request's fingerprint and when a
/// record made now expires.
#[derive(Debug, Clone)]
pub struct KeyUse {
    pub scope: IdempotencyScope,
    pub fingerprint: String,
    pub expires_at: String,
}

/// What the store found under an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyState {
    /// No live record: this request is the first (and now holds the key).
    Fresh,
    /// The first request's stored response.
    Replay(StoredResponse),
    /// The key was used with a different body.
    Mismatch,
    /// The first request is still in flight.
    InProgress,
}

/// A job to create at submit, with its debit.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub job: JobRow,
    pub response: StoredResponse,
}

/// What a submit transaction did.
#[derive(Debug)]
pub enum Submitted<E> {
    Created(Box<NewJob>),
    /// The idempotency key decided (a replay or a refusal); nothing was created.
    Key(KeyState),
    /// The service refused, having seen the variant and the organization.
    Refused(E),
}

/// Everything of one lab's database, for `veneer migrate`.
#[derive(Debug, Default)]
pub struct Dump {
    pub organizations: Vec<Organization>,
    pub api_keys: Vec<ApiKey>,
    pub variants: Vec<VariantRow>,
    /// With each job's attempt number.
    pub jobs: Vec<(JobRow, i64, Option<i64>)>,
    pub ledger: Vec<LedgerEntry>,
    pub idempotency_keys: Vec<StoredKey>,
    pub daily_writes: Vec<(String, String, i64)>,
    pub settings: Vec<(String, String)>,
    /// The source's counts and sums, read in the same snapshot as the rows.
    pub census: Census,
}

/// An idempotency record as stored.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub scope: IdempotencyScope,
    pub fingerprint: String,
    pub response: Option<StoredResponse>,
    pub created_at: String,
    pub expires_at: String,
}

/// Row counts per table and ledger sums per organization, to check a migration by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Census {
    pub tables: Vec<(&'static str, i64)>,
    /// (organization, subscription sum, purchased sum), ordered by organization.
    pub ledger_sums: Vec<(String, i64, i64)>,
}
