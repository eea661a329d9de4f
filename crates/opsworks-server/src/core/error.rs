//! The core's error: what went wrong below the operations, in the core's own terms. The edge
//! maps it to the wire's error codes ([`opsworks_api::ApiError`]) in one place.

use opsworks_model::Kind;
use opsworks_store::StoreError;

/// An error of the core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A resource that does not exist.
    #[error("Unable to find {kind} with ID {id}")]
    NotFound {
        /// What kind of resource (`stack`, `instance`, ...).
        kind: &'static str,
        /// Its ID.
        id: String,
    },
    /// A change the stored state does not allow (a status transition, a command already done).
    #[error("{0}")]
    Invalid(String),
    /// A caller acting for something that is not theirs (an agent for another instance).
    #[error("{0}")]
    Forbidden(String),
    /// The store failed (a full disk among others).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The instance provider failed.
    #[error("{0}")]
    Machine(String),
    /// A file of the data dir could not be used.
    #[error("{0}")]
    Io(String),
}

impl CoreError {
    /// `Unable to find <kind> with ID <id>`.
    pub fn not_found(kind: Kind, id: &str) -> Self {
        Self::NotFound {
            kind: kind.noun(),
            id: id.to_string(),
        }
    }
}

impl From<opsworks_model::TransitionError> for CoreError {
    fn from(e: opsworks_model::TransitionError) -> Self {
        let msg = e.to_string();
        let mut c = msg.chars();
        Self::Invalid(
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default(),
        )
    }
}

/// The core's result.
pub type CoreResult<T> = Result<T, CoreError>;
