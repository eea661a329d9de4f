//! Persistence of the control plane.
//!
//! Two levels:
//! - [`Backend`]: what an engine implements (SQLite here, PostgreSQL beside it): resources as JSON
//!   text keyed by [`Kind`] and ID with the stack, parent and instance they belong to broken out
//!   for filtering, write transactions that hold the database's write lock ([`BackendTx`]), access
//!   keys, settings, the event log and instance metrics ([`MetricsStore`]).
//! - [`Store`]: what the server uses: typed resources ([`opsworks_model::Resource`]) read through
//!   a cache that stays correct when another process writes the same database, and written in
//!   atomic transactions ([`Txn`]) that are acknowledged only once durable.
//!
//! Servers sharing one database also coordinate through it ([`Cluster`]: notifications, the
//! registry of servers, leases, agents' presence, command logs).
//!
//! [`Engine`] names the engines and [`open`] opens one; [`copy_all`] moves one database's contents
//! into another (`opsworks db migrate`). A conformance suite in `tests/` runs against each engine.

mod audit;
pub mod cluster;
mod copy;
pub mod metrics;
mod postgres;
mod sqlite;
pub mod testing;
mod typed;

use async_trait::async_trait;
use serde_json::Value;

pub use cluster::{Cluster, Listener, LogAppend, Notification, ServerRecord};
pub use copy::{CopyReport, copy_all};
pub use metrics::MetricsStore;
pub use opsworks_model::{EventKind, Kind, Resource};
pub use postgres::{PostgresBackend, PostgresOptions};
pub use sqlite::SqliteBackend;
pub use typed::{Cached, SEALED_PREFIX, Sealing, Store, Txn};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk holding the database is full: nothing was written.
    #[error("the disk holding the database is full; nothing was written ({0})")]
    DiskFull(String),
    /// Another writer held the database's lock for too long.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The database cannot be reached: refused or lost connection, a server shutting down, no
    /// connection within the pool's timeout, a missing database, refused credentials.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database failed otherwise.
    #[error("database error: {0}")]
    Database(String),
    /// The engine's configuration is unusable (a malformed URL, an unknown scheme).
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// [`copy_all`] refused a target that already holds data.
    #[error("the target database is not empty: {0}")]
    TargetNotEmpty(String),
    /// Migrations failed to apply.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored document does not read as its kind (the database was edited by hand or is
    /// corrupt).
    #[error("corrupt {kind} {id}: {source}")]
    Corrupt {
        /// Kind of the document.
        kind: &'static str,
        /// Its ID.
        id: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A resource could not be written as JSON (a bug: resources always serialize).
    #[error("cannot store {kind} {id}: {source}")]
    Encode {
        /// Kind of the resource.
        kind: &'static str,
        /// Its ID.
        id: String,
        /// The error.
        source: serde_json::Error,
    },
    /// A sealed secret that this server's master key does not open (another data dir's key).
    #[error(
        "the secrets of {kind} {id} were sealed with another master key; every server on one database needs the same master.key"
    )]
    Sealed {
        /// Kind of the resource.
        kind: &'static str,
        /// Its ID.
        id: String,
    },
    /// The data dir is in use by another server process.
    #[error("{0}")]
    Locked(String),
    /// The configured engine is not compiled into this build.
    #[error("storage engine {0} is not available in this build")]
    EngineUnavailable(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                return postgres::classify(pg);
            }
            // SQLite's primary result codes (the low byte of extended ones): 13 is SQLITE_FULL,
            // 5 and 6 are BUSY and LOCKED.
            let code = db.code().unwrap_or_default();
            let primary = code.parse::<i64>().map(|c| c & 0xff).unwrap_or(-1);
            if primary == 13 {
                return Self::DiskFull(db.message().to_string());
            }
            if primary == 5 || primary == 6 {
                return Self::Busy(db.message().to_string());
            }
        }
        match &e {
            sqlx::Error::Io(io) if io.raw_os_error() == Some(28) => Self::DiskFull(io.to_string()),
            // SQLite reports its file errors as result codes: an I/O error is a network peer's.
            sqlx::Error::Io(io) => Self::Unavailable(format!("connection lost: {io}")),
            sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
                Self::Unavailable(format!("connection lost: {e}"))
            }
            sqlx::Error::PoolTimedOut => Self::Unavailable(
                "no database connection became available in time (the database is unreachable or overloaded)"
                    .into(),
            ),
            sqlx::Error::PoolClosed => Self::Unavailable("the store is closed".into()),
            _ => Self::Database(e.to_string()),
        }
    }
}

/// Which resources of a kind to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter<'a> {
    /// All of them.
    All,
    /// Those of one stack.
    Stack(&'a str),
    /// Those of one parent (the commands of a deployment, the transitions of an instance).
    Parent(&'a str),
    /// Those concerning one instance (its commands, its service errors).
    Instance(&'a str),
    /// Those with these IDs (unknown IDs are simply absent from the result).
    Ids(&'a [String]),
}

/// A resource as the backend keeps it: its identity, its indexes and its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Its ID.
    pub id: &'a str,
    /// The stack it belongs to.
    pub stack_id: Option<&'a str>,
    /// Its parent.
    pub parent_id: Option<&'a str>,
    /// The instance it concerns.
    pub instance_id: Option<&'a str>,
    /// The document.
    pub doc: &'a str,
}

/// A resource as stored, owned: what [`Backend::export_rows`] returns for copying between engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// Its kind.
    pub kind: Kind,
    /// Its ID.
    pub id: String,
    /// The stack it belongs to.
    pub stack_id: Option<String>,
    /// Its parent.
    pub parent_id: Option<String>,
    /// The instance it concerns.
    pub instance_id: Option<String>,
    /// The document.
    pub doc: String,
}

impl StoredRow {
    /// The row, borrowed, as [`BackendTx::put`] takes it.
    pub fn as_row(&self) -> Row<'_> {
        Row {
            kind: self.kind,
            id: &self.id,
            stack_id: self.stack_id.as_deref(),
            parent_id: self.parent_id.as_deref(),
            instance_id: self.instance_id.as_deref(),
            doc: &self.doc,
        }
    }
}

/// A stored access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    /// The access key ID.
    pub access_key_id: String,
    /// The secret, sealed by the caller; the store never sees it in the clear.
    pub sealed_secret: Vec<u8>,
    /// Whom the key belongs to (`root`, `instance:<id>`, an IAM user ARN).
    pub principal: String,
    /// When it was created.
    pub created_at: String,
}

/// An event to record: something that happened to a stack's resources (a status change, a
/// service error, a scaling event), for the event log and its live stream.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// When it happened (an AWS timestamp, RFC 3339 UTC).
    pub at: String,
    /// The stack it happened in.
    pub stack_id: String,
    /// What happened.
    pub kind: EventKind,
    /// The instance concerned, if any.
    pub instance_id: Option<String>,
    /// The layer concerned, if any.
    pub layer_id: Option<String>,
    /// The deployment concerned, if any.
    pub deployment_id: Option<String>,
    /// The command concerned, if any.
    pub command_id: Option<String>,
    /// The details (a JSON object whose members depend on the kind).
    pub detail: Value,
}

/// A recorded event: a [`NewEvent`] and its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Its sequence number: increasing, never reused, the same order as recording.
    pub seq: i64,
    /// The event.
    pub event: NewEvent,
}

/// An entry of the audit log to record: one mutating call, who made it, from where, on what,
/// and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    /// When the call ended (an AWS timestamp, RFC 3339 UTC).
    pub at: String,
    /// The caller's ARN (`arn:aws:iam::ACCOUNT:root`, a user's ARN).
    pub principal: String,
    /// The address the call came from, when known.
    pub source_ip: Option<String>,
    /// The service (`opsworks`, `iam`).
    pub service: String,
    /// The operation (`CreateLayer`).
    pub operation: String,
    /// The stack concerned, if any.
    pub stack_id: Option<String>,
    /// What the call acted on (an ID, a name or an ARN), if known.
    pub target: Option<String>,
    /// `Success`, or the error code it ended with.
    pub outcome: String,
    /// More (a JSON object: the error's message, the access key used, ...).
    pub detail: Value,
}

/// A recorded audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Its sequence number: increasing, never reused.
    pub seq: i64,
    /// The entry.
    pub entry: NewAudit,
}

/// Which audit entries to read: those after `after`, oldest first, at most `limit`, narrowed by
/// the members given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditQuery<'a> {
    /// Only this principal's.
    pub principal: Option<&'a str>,
    /// Only this stack's.
    pub stack_id: Option<&'a str>,
    /// Only at or after this time (an AWS timestamp).
    pub since: Option<&'a str>,
    /// Only before this time (an AWS timestamp).
    pub until: Option<&'a str>,
    /// Only entries with a higher sequence number.
    pub after: i64,
    /// At most this many.
    pub limit: u32,
}

/// What an engine implements. Listing returns documents in insertion order, so Describe calls
/// are stable.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// One document's text.
    async fn get(&self, kind: Kind, id: &str) -> Result<Option<String>, StoreError>;
    /// The documents of a kind, filtered, as `(id, text)` in insertion order.
    async fn list(
        &self,
        kind: Kind,
        filter: Filter<'_>,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// How many documents of a kind match a filter.
    async fn count(&self, kind: Kind, filter: Filter<'_>) -> Result<u64, StoreError>;
    /// Starts a write transaction, holding the database's write lock until it ends: writes of
    /// other transactions (of this process or another) wait.
    async fn begin(&self) -> Result<Box<dyn BackendTx>, StoreError>;
    /// A counter that every committed transaction touching `kind` raises, as the database keeps
    /// it, so caches of several processes sharing it stay correct; `None` when only this process
    /// can write the database (the embedded engine locks its data dir).
    async fn generation(&self, kind: Kind) -> Result<Option<i64>, StoreError> {
        let _ = kind;
        Ok(None)
    }
    /// The generations of several kinds at once (one round trip where the database keeps them),
    /// in the order asked; `None` as for [`generation`](Backend::generation).
    async fn generations(&self, kinds: &[Kind]) -> Result<Option<Vec<i64>>, StoreError> {
        let mut out = Vec::with_capacity(kinds.len());
        for kind in kinds {
            match self.generation(*kind).await? {
                Some(g) => out.push(g),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }
    /// A setting.
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Stores `value` under `key` unless the key already has one; returns the value in force.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;
    /// An access key by ID.
    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>, StoreError>;
    /// Every access key.
    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError>;
    /// Events with a sequence number above `after`, oldest first, at most `limit`, of one stack
    /// or (`None`) of all.
    async fn events_after(
        &self,
        stack_id: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// The newest `limit` events, oldest first, of one stack or (`None`) of all.
    async fn latest_events(
        &self,
        stack_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// Drops events recorded before `before` (an AWS timestamp) and all but the newest
    /// `keep_rows`; returns how many went.
    async fn prune_events(&self, before: &str, keep_rows: u64) -> Result<u64, StoreError>;
    /// Audit entries, oldest first, as `query` narrows them.
    async fn audit(&self, query: AuditQuery<'_>) -> Result<Vec<AuditRecord>, StoreError>;
    /// Drops audit entries recorded before `before` and all but the newest `keep_rows`; returns
    /// how many went.
    async fn prune_audit(&self, before: &str, keep_rows: u64) -> Result<u64, StoreError>;
    /// The instance metrics kept beside the documents.
    fn metrics(&self) -> &dyn MetricsStore;
    /// What servers sharing this database coordinate through; `None` for an engine only one
    /// process opens.
    fn cluster(&self) -> Option<&dyn Cluster> {
        None
    }

    // For copying a whole database between engines ([`copy_all`]).

    /// Every resource of a kind with its index columns, in insertion order.
    async fn export_rows(&self, kind: Kind) -> Result<Vec<StoredRow>, StoreError>;
    /// Every setting, as `(key, value)`, by key.
    async fn settings(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// The highest event sequence number ever handed out (0 when none), pruned or not.
    async fn event_seq_high_water(&self) -> Result<i64, StoreError>;
}

/// A write transaction: reads see its own writes; nothing is visible to others, nor durable,
/// until [`commit`](BackendTx::commit) returns. Dropped without commit, it rolls back.
#[async_trait]
pub trait BackendTx: Send {
    /// One document's text.
    async fn get(&mut self, kind: Kind, id: &str) -> Result<Option<String>, StoreError>;
    /// The documents of a kind, filtered, as `(id, text)` in insertion order.
    async fn list(
        &mut self,
        kind: Kind,
        filter: Filter<'_>,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// How many documents match.
    async fn count(&mut self, kind: Kind, filter: Filter<'_>) -> Result<u64, StoreError>;
    /// Inserts or replaces a document (a replaced one keeps its place in listings).
    async fn put(&mut self, row: Row<'_>) -> Result<(), StoreError>;
    /// Deletes a document (absent is fine).
    async fn delete(&mut self, kind: Kind, id: &str) -> Result<(), StoreError>;
    /// Appends an event; returns its sequence number.
    async fn append_event(&mut self, event: &NewEvent) -> Result<i64, StoreError>;
    /// Inserts or replaces an access key.
    async fn put_access_key(&mut self, key: &AccessKeyRecord) -> Result<(), StoreError>;
    /// Deletes every access key of a principal; returns how many went.
    async fn delete_access_keys_of(&mut self, principal: &str) -> Result<u64, StoreError>;
    /// Deletes one access key (absent is fine).
    async fn delete_access_key(&mut self, access_key_id: &str) -> Result<(), StoreError>;
    /// Appends an audit entry; returns its sequence number.
    async fn append_audit(&mut self, entry: &NewAudit) -> Result<i64, StoreError>;
    /// Stores an audit entry under the sequence number it already has (copying between engines).
    async fn import_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Raises the generation of the kinds written (engines shared by several processes).
    async fn bump_generations(&mut self, kinds: &[Kind]) -> Result<(), StoreError> {
        let _ = kinds;
        Ok(())
    }
    /// Sends a notification to every server listening on `channel` once (and only if) this
    /// transaction commits (engines shared by several processes; a no-op otherwise).
    async fn notify(&mut self, channel: &str, payload: &str) -> Result<(), StoreError> {
        let _ = (channel, payload);
        Ok(())
    }
    /// Stores an event under the sequence number it already has (copying between engines);
    /// later appends get higher numbers.
    async fn import_event(&mut self, record: &EventRecord) -> Result<(), StoreError>;
    /// Makes sure appends hand out numbers above `seq` (copying a log whose newest events were
    /// pruned: their numbers must not come back).
    async fn raise_event_seq(&mut self, seq: i64) -> Result<(), StoreError>;
    /// Makes the writes durable and visible, and releases the write lock.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// The storage engines.
#[derive(Clone, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite in the data dir (the default).
    Sqlite {
        /// Path of the database file.
        path: std::path::PathBuf,
    },
    /// PostgreSQL, shared by any number of servers.
    Postgres {
        /// Connection URL, `postgres://user:password@host:port/db` (it may hold a password:
        /// show the engine with `Display` or `Debug`, which leave it out).
        url: String,
    },
}

impl Engine {
    /// The engine a `--database-url` names: `postgres://...` or `postgresql://...` is
    /// PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a plain path is SQLite.
    pub fn from_url(s: &str) -> Result<Self, StoreError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(StoreError::Config("the database URL is empty".into()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres { url: s.into() });
        }
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(StoreError::Config(
                    "a sqlite:// URL needs a path (sqlite:///var/lib/opsworks/opsworks.db)".into(),
                ));
            }
            return Ok(Self::Sqlite { path: path.into() });
        }
        if let Some((scheme, _)) = s.split_once("://") {
            // Only the scheme: the rest may hold a password.
            return Err(StoreError::Config(format!(
                "unsupported database URL scheme {scheme:?}: use postgres://user:password@host:port/db, sqlite://PATH or a path"
            )));
        }
        Ok(Self::Sqlite { path: s.into() })
    }
}

/// Names the engine and where it is, never a password.
impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            Self::Postgres { url } => f.write_str(&postgres::redact(url)),
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Self::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &postgres::redact(url))
                .finish(),
        }
    }
}

/// Opens the configured engine, brings its schema up to date, and puts the typed, cached store in
/// front of it.
pub async fn open(engine: &Engine) -> Result<Store, StoreError> {
    Ok(Store::new(open_backend(engine).await?))
}

/// Opens the configured engine and brings its schema up to date, without the typed store (for
/// [`copy_all`]).
pub async fn open_backend(engine: &Engine) -> Result<std::sync::Arc<dyn Backend>, StoreError> {
    Ok(match engine {
        Engine::Sqlite { path } => std::sync::Arc::new(SqliteBackend::open(path).await?),
        Engine::Postgres { url } => {
            std::sync::Arc::new(PostgresBackend::open(url, PostgresOptions::default()).await?)
        }
    })
}
