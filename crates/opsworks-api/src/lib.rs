//! Wire layer of the OpsWorks Stacks API: what a request looks like on the wire and how it is checked.
//!
//! This crate knows the AWS JSON 1.1 protocol, the service model shipped by botocore (so every
//! operation's input is validated the same way, against the same source of truth the clients use),
//! the AWS error codes and their HTTP status, and SigV4. It does no I/O.

pub mod error;
pub mod model;
pub mod shapes;
pub mod sigv4;

pub use error::ApiError;
pub use model::{Model, model};

/// The `X-Amz-Target` prefix every OpsWorks Stacks operation carries.
pub const TARGET_PREFIX: &str = "OpsWorks_20130218.";

/// The content type of AWS JSON 1.1 requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// What the API returns in place of a secret (passwords, SSH keys, secure environment values).
pub const FILTERED: &str = "*****FILTERED*****";

/// The signing name (and endpoint prefix) of the service in SigV4 credential scopes.
pub const SIGNING_NAME: &str = "opsworks";
