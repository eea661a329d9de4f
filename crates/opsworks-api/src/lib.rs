//! Wire layer of the OpsWorks Stacks API and the AWS services beside it: what a request looks like
//! on the wire and how it is checked.
//!
//! This crate knows the AWS JSON 1.1 protocol (OpsWorks), the Query protocol (IAM, STS, RDS, ELB)
//! and EC2's dialect of it ([`query`]), the service models shipped by botocore (so every
//! operation's input is validated against the same source of truth the clients use), which service
//! a request's SigV4 scope routes to ([`service`]), the AWS error codes and their HTTP status, and
//! SigV4. It does no I/O.

pub mod error;
pub mod model;
pub mod query;
pub mod service;
pub mod shapes;
pub mod sigv4;

pub use error::ApiError;
pub use model::{Model, ServiceModel, model};
pub use query::AwsError;
pub use service::{Protocol, Service};

/// The `X-Amz-Target` prefix every OpsWorks Stacks operation carries.
pub const TARGET_PREFIX: &str = "OpsWorks_20130218.";

/// The content type of AWS JSON 1.1 requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// What the API returns in place of a secret (passwords, SSH keys, secure environment values).
pub const FILTERED: &str = "*****FILTERED*****";

/// The signing name (and endpoint prefix) of the service in SigV4 credential scopes.
pub const SIGNING_NAME: &str = "opsworks";
