//! IAM identity policies and OpsWorks permission levels, the pure core of authorizing every
//! request: no I/O.
//!
//! - [`Policy::parse`] reads a policy document as IAM does and refuses what IAM refuses, with
//!   IAM's `MalformedPolicyDocument` wording ([`PolicyError`]); [`check_size`] applies IAM's size
//!   quotas ([`PolicyKind`]).
//! - [`evaluate`] decides a [`RequestContext`] (action, resource, condition keys) over a user's
//!   policies: an explicit Deny anywhere wins, otherwise any Allow, otherwise an implicit deny.
//!   Patterns are compiled when parsed, so evaluation allocates nothing in the common case.
//! - [`authorize`] combines that [`Decision`] with the stack's [`PermissionLevel`] as OpsWorks
//!   did; [`OPSWORKS_ACTIONS`] says which operations are stack-scoped and which level grants each.
//! - [`AWS_MANAGED_POLICIES`] are the OpsWorks managed policies an account starts with.
//! - [`access_denied_message`] words a refusal as AWS does.

mod condition;
mod context;
mod dates;
mod denied;
mod error;
mod json;
mod managed;
mod opsworks;
mod parse;
mod pattern;
mod policy;
mod wildcard;

pub use context::RequestContext;
pub use denied::{DenialReason, access_denied_message};
pub use error::{PolicyError, PolicyKind, SizeLimitExceeded, check_size, counted_size};
pub use managed::{AWS_MANAGED_POLICIES, ManagedPolicy, aws_managed_policy};
pub use opsworks::{
    ActionInfo, AllowedBy, Authorization, Denial, Grant, Grants, OPSWORKS_ACTIONS, PermissionLevel,
    Scope, action_info, authorize, stack_resource,
};
pub use policy::{Decision, Effect, Policy, Statement, StatementRef, Version, evaluate};
