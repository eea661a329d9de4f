//! Persistence of the control plane behind one [`Store`] trait.
//!
//! Resources are JSON documents keyed by [`Kind`] and ID, filtered by stack or parent, and
//! written in atomic batches ([`Store::apply`]). The API layer sees only the trait, so a
//! PostgreSQL engine can join SQLite without touching it; [`Engine`] names the engines. Instance
//! metrics live beside the documents behind their own trait, [`MetricsStore`] ([`metrics`]).

pub mod metrics;
mod sqlite;

use async_trait::async_trait;
use serde_json::Value;

pub use metrics::MetricsStore;
pub use sqlite::SqliteStore;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed to apply.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored document is not valid JSON (the database was edited by hand or is corrupt).
    #[error("corrupt document {kind}/{id}: {source}")]
    Corrupt {
        /// Kind of the document.
        kind: &'static str,
        /// Its ID.
        id: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A [`Filter::Member`] named a member without an index.
    #[error("documents cannot be filtered by member {0}: it has no index")]
    UnindexedMember(&'static str),
    /// The configured engine is not compiled into this build.
    #[error("storage engine {0} is not available in this build")]
    EngineUnavailable(&'static str),
}

/// The kinds of document the control plane keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A stack (`Stack` shape plus private fields).
    Stack,
    /// A layer.
    Layer,
    /// An instance.
    Instance,
    /// An app.
    App,
    /// A deployment.
    Deployment,
    /// A command (parent: its deployment).
    Command,
    /// A service error.
    ServiceError,
    /// The tags of one resource (ID: its ARN).
    Tags,
    /// A recorded instance status change (parent: the instance).
    Transition,
}

impl Kind {
    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stack => "stack",
            Self::Layer => "layer",
            Self::Instance => "instance",
            Self::App => "app",
            Self::Deployment => "deployment",
            Self::Command => "command",
            Self::ServiceError => "service_error",
            Self::Tags => "tags",
            Self::Transition => "transition",
        }
    }
}

/// Which documents of a kind to list.
#[derive(Debug, Clone, Copy)]
pub enum Filter<'a> {
    /// All of them.
    All,
    /// Those of one stack.
    Stack(&'a str),
    /// Those of one parent (the commands of a deployment, the transitions of an instance).
    Parent(&'a str),
    /// Those with these IDs (unknown IDs are simply absent from the result).
    Ids(&'a [String]),
    /// Those whose top-level string member `name` equals `value`. Only [`INDEXED_MEMBERS`] are
    /// accepted, so every such lookup is served by an index.
    Member(&'static str, &'a str),
}

/// The document members [`Filter::Member`] may name.
pub const INDEXED_MEMBERS: &[&str] = &["InstanceId"];

/// One write of an atomic batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// Insert or replace a document.
    Put {
        /// Its kind.
        kind: Kind,
        /// Its ID.
        id: String,
        /// The stack it belongs to, for [`Filter::Stack`].
        stack_id: Option<String>,
        /// Its parent, for [`Filter::Parent`].
        parent_id: Option<String>,
        /// The document.
        doc: Value,
    },
    /// Delete a document (absent is fine).
    Delete {
        /// Its kind.
        kind: Kind,
        /// Its ID.
        id: String,
    },
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
    /// What happened (`instance_status`, `command_status`, `deployment_status`, `service_error`,
    /// `load_scaling`, ...).
    pub kind: String,
    /// The instance concerned, if any.
    pub instance_id: Option<String>,
    /// The layer concerned, if any.
    pub layer_id: Option<String>,
    /// The deployment concerned, if any.
    pub deployment_id: Option<String>,
    /// The command concerned, if any.
    pub command_id: Option<String>,
    /// The details (a JSON object; the store does not interpret it).
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

/// The persistence interface of the control plane.
///
/// Listing returns documents in insertion order, so Describe calls are stable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// One document.
    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Value>, StoreError>;
    /// Documents of a kind, filtered.
    async fn list(&self, kind: Kind, filter: Filter<'_>) -> Result<Vec<Value>, StoreError>;
    /// Documents of a kind, filtered, as the JSON text stored (for answers that pass documents on
    /// unchanged, without parsing them).
    async fn list_raw(&self, kind: Kind, filter: Filter<'_>) -> Result<Vec<String>, StoreError>;
    /// How many documents of a kind match a filter.
    async fn count(&self, kind: Kind, filter: Filter<'_>) -> Result<u64, StoreError>;
    /// Applies a batch of writes atomically: all or none.
    async fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// A setting.
    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Stores `value` under `key` unless the key already has one; returns the value in force.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;
    /// An access key by ID.
    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>, StoreError>;
    /// Every access key.
    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError>;
    /// Inserts or replaces an access key.
    async fn put_access_key(&self, key: AccessKeyRecord) -> Result<(), StoreError>;
    /// Deletes every access key of a principal; returns how many went.
    async fn delete_access_keys_of(&self, principal: &str) -> Result<u64, StoreError>;
    /// Appends an event to the log; returns its sequence number.
    async fn append_event(&self, event: &NewEvent) -> Result<i64, StoreError>;
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

/// The storage engines, named even when not compiled in, so configuration errors are clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite in the data dir (the default).
    Sqlite {
        /// Path of the database file.
        path: std::path::PathBuf,
    },
    /// PostgreSQL: planned; refused with [`StoreError::EngineUnavailable`] until it lands.
    Postgres {
        /// Connection URL.
        url: String,
    },
}

/// Opens the configured engine and brings its schema up to date.
pub async fn open(engine: &Engine) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match engine {
        Engine::Sqlite { path } => Ok(std::sync::Arc::new(SqliteStore::open(path).await?)),
        Engine::Postgres { .. } => Err(StoreError::EngineUnavailable("postgres")),
    }
}
