//! The errors the API returns, each knowing its AWS error code and HTTP status.

/// An error as the client sees it: rendered at the edge as `{"__type": code, "message": ...}`.
///
/// Messages follow AWS's wording where AWS has one, because scripts match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A request member is missing, out of range or inconsistent with the stored state.
    #[error("{0}")]
    Validation(String),
    /// A referenced stack, layer, instance, app, deployment, ... does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// No `Authorization` header (nor presigned query) at all.
    #[error("{0}")]
    MissingAuthenticationToken(String),
    /// The access key ID is not known to this server.
    #[error("{0}")]
    UnrecognizedClient(String),
    /// The signature does not match, or the request date is outside the allowed skew.
    #[error("{0}")]
    InvalidSignature(String),
    /// The `Authorization` header is malformed or misses a component.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The caller is authenticated but not allowed to do this.
    #[error("{0}")]
    AccessDenied(String),
    /// `X-Amz-Target` names no operation of the service.
    #[error("{0}")]
    UnknownOperation(String),
    /// The body is not JSON, or a member has the wrong JSON type.
    #[error("{0}")]
    Serialization(String),
    /// An operation of the model that this server does not implement yet.
    #[error("{0}")]
    UnsupportedOperation(String),
    /// A fault of the server itself; the message never carries internals worth hiding.
    #[error("{0}")]
    Internal(String),
    /// The server cannot take the request now (a full disk, a busy database); clients retry.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The request's body is larger than the server takes.
    #[error("{0}")]
    RequestTooLarge(String),
}

impl ApiError {
    /// The `__type` AWS puts in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "ValidationException",
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            Self::UnrecognizedClient(_) => "UnrecognizedClientException",
            Self::InvalidSignature(_) => "InvalidSignatureException",
            Self::IncompleteSignature(_) => "IncompleteSignatureException",
            Self::AccessDenied(_) => "AccessDeniedException",
            Self::UnknownOperation(_) => "UnknownOperationException",
            Self::Serialization(_) => "SerializationException",
            Self::UnsupportedOperation(_) => "UnsupportedOperationException",
            Self::Internal(_) => "InternalFailure",
            Self::ServiceUnavailable(_) => "ServiceUnavailable",
            Self::RequestTooLarge(_) => "RequestEntityTooLarge",
        }
    }

    /// The HTTP status: AWS JSON services answer every client error with 400.
    pub fn status(&self) -> u16 {
        match self {
            Self::Internal(_) => 500,
            Self::ServiceUnavailable(_) => 503,
            Self::RequestTooLarge(_) => 413,
            _ => 400,
        }
    }

    /// The message alone.
    pub fn message(&self) -> &str {
        match self {
            Self::Validation(m)
            | Self::ResourceNotFound(m)
            | Self::MissingAuthenticationToken(m)
            | Self::UnrecognizedClient(m)
            | Self::InvalidSignature(m)
            | Self::IncompleteSignature(m)
            | Self::AccessDenied(m)
            | Self::UnknownOperation(m)
            | Self::Serialization(m)
            | Self::UnsupportedOperation(m)
            | Self::Internal(m)
            | Self::ServiceUnavailable(m)
            | Self::RequestTooLarge(m) => m,
        }
    }

    /// The JSON body AWS JSON 1.1 clients parse.
    pub fn body(&self) -> String {
        serde_json::json!({ "__type": self.code(), "message": self.message() }).to_string()
    }

    /// `Unable to find <what> with ID <id>`, AWS's wording for a missing resource.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::ResourceNotFound(format!("Unable to find {what} with ID {id}"))
    }
}
