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
//! [`Engine`] names the engines and [`open`] opens one. A conformance suite in `tests/` runs
//! against each engine.

pub mod metrics;
mod sqlite;
mod typed;

use async_trait::async_trait;
use serde_json::Value;

pub use metrics::MetricsStore;
pub use opsworks_model::{EventKind, Kind, Resource};
pub use sqlite::SqliteBackend;
pub use typed::{Cached, Store, Txn};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk holding the database is full: nothing was written.
    #[error("the disk holding the database is full; nothing was written ({0})")]
    DiskFull(String),
    /// Another writer held the database's lock for too long.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The database failed otherwise.
    #[error("database error: {0}")]
    Database(String),
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
            // SQLite's primary result codes (the low byte of extended ones): 13 is SQLITE_FULL,
            // 5 and 6 are BUSY and LOCKED. PostgreSQL's 53100 is disk_full.
            let code = db.code().unwrap_or_default();
            let primary = code.parse::<i64>().map(|c| c & 0xff).unwrap_or(-1);
            if primary == 13 || code == "53100" {
                return Self::DiskFull(db.message().to_string());
            }
            if primary == 5 || primary == 6 {
                return Self::Busy(db.message().to_string());
            }
        }
        if let sqlx::Error::Io(io) = &e
            && io.raw_os_error() == Some(28)
        {
            return Self::DiskFull(io.to_string());
        }
        Self::Database(e.to_string())
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

/// What an engine implements. Listing returns documents in insertion order, so Describe calls
/// are stable.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// One document's text.
    async fn get(&self, kind: Kind, id: &str) -> Result<Option<String>, StoreError>;
    /// The documents of a kind, filtered, as `(id, text)` in insertion order.
    async fn list(&self, kind: Kind, filter: Filter<'_>)
    -> Result<Vec<(String, String)>, StoreError>;
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
    /// The instance metrics kept beside the documents.
    fn metrics(&self) -> &dyn MetricsStore;
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
    /// Raises the generation of the kinds written (engines shared by several processes).
    async fn bump_generations(&mut self, kinds: &[Kind]) -> Result<(), StoreError> {
        let _ = kinds;
        Ok(())
    }
    /// Makes the writes durable and visible, and releases the write lock.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// The storage engines, named even when not compiled in, so configuration errors are clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite in the data dir (the default).
    Sqlite {
        /// Path of the database file.
        path: std::path::PathBuf,
    },
    /// PostgreSQL: refused with [`StoreError::EngineUnavailable`] until it lands.
    Postgres {
        /// Connection URL.
        url: String,
    },
}

/// Opens the configured engine, brings its schema up to date, and puts the typed, cached store in
/// front of it.
pub async fn open(engine: &Engine) -> Result<Store, StoreError> {
    let backend: std::sync::Arc<dyn Backend> = match engine {
        Engine::Sqlite { path } => std::sync::Arc::new(SqliteBackend::open(path).await?),
        Engine::Postgres { .. } => return Err(StoreError::EngineUnavailable("postgres")),
    };
    Ok(Store::new(backend))
}
