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
//!
//! ```
//! use opsworks_policy::*;
//!
//! let doc = r#"{"Version": "2012-10-17", "Statement": [
//!     {"Effect": "Allow", "Action": "opsworks:Describe*", "Resource": "*"},
//!     {"Effect": "Deny", "Action": "opsworks:*", "Resource": "*",
//!      "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}"#;
//! let policy = Policy::parse(doc, PolicyKind::InlineUser)?;
//! check_size(PolicyKind::InlineUser, counted_size(doc), "alice")?;
//!
//! let stack = stack_resource("us-east-1", "123456789012", "2f18b4cb-4de5-4429-a149-ff7da9f0d8ee");
//! let ctx = RequestContext::new("opsworks:CreateDeployment", &stack)
//!     .with_iam_user("arn:aws:iam::123456789012:user/alice", "alice", "AIDAEXAMPLE", "123456789012")
//!     .with_secure_transport(true);
//! let decision = evaluate(&ctx, &[&policy]);
//! assert_eq!(decision, Decision::ImplicitDeny);
//!
//! // A deploy-level user on the stack may deploy all the same.
//! let grants = Grants { level: Some(PermissionLevel::Deploy), self_management: false };
//! assert!(authorize("opsworks:CreateDeployment", decision, grants).is_allowed());
//!
//! // Without the level, the refusal reads as AWS's.
//! let refused = authorize("opsworks:CreateDeployment", decision, Grants::default());
//! let reason = DenialReason::of_authorization(refused).expect("refused");
//! assert!(access_denied_message("arn:aws:iam::123456789012:user/alice", ctx.action(), ctx.resource(), reason)
//!     .starts_with("User: arn:aws:iam::123456789012:user/alice is not authorized to perform: opsworks:CreateDeployment on resource: arn:aws:opsworks:"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
