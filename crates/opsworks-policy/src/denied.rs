//! The message of an `AccessDeniedException` as AWS words it.
//!
//! AWS's current wording (IAM troubleshoot_access-denied):
//! `User: ARN is not authorized to perform: ACTION on resource: RESOURCE because no
//! identity-based policy allows the ACTION action` and `... with an explicit deny in an
//! identity-based policy`; ` on resource: RESOURCE` is left out for actions without a resource
//! type (resource `*`).

use crate::opsworks::{Authorization, Denial};
use crate::policy::Decision;

/// Why access is refused, which picks the ending of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenialReason {
    /// No policy (and no permission level) allows the action.
    Implicit,
    /// A Deny statement of an identity-based policy applies.
    ExplicitPolicyDeny,
    /// OpsWorks' stack permission level `deny`: an explicit deny that is no IAM policy, told
    /// with AWS's older, policy-less ending "with an explicit deny".
    StackPermissionDeny,
}

impl DenialReason {
    /// The reason for a refused [`Authorization`]; `None` when it is allowed.
    pub fn of_authorization(auth: Authorization) -> Option<DenialReason> {
        match auth {
            Authorization::Allowed(_) => None,
            Authorization::Denied(Denial::ExplicitPolicyDeny(_)) => {
                Some(DenialReason::ExplicitPolicyDeny)
            }
            Authorization::Denied(Denial::StackPermissionDeny) => {
                Some(DenialReason::StackPermissionDeny)
            }
            Authorization::Denied(Denial::NotGranted) => Some(DenialReason::Implicit),
        }
    }

    /// The reason for a refused IAM [`Decision`]; `None` when it allows.
    pub fn of_decision(decision: Decision) -> Option<DenialReason> {
        match decision {
            Decision::Allow => None,
            Decision::ExplicitDeny { .. } => Some(DenialReason::ExplicitPolicyDeny),
            Decision::ImplicitDeny => Some(DenialReason::Implicit),
        }
    }
}

/// The `AccessDeniedException` message: `principal_arn` is the caller
/// (`arn:aws:iam::ACCOUNT:user/NAME`), `action` the IAM action (`opsworks:DeleteStack`),
/// `resource` the ARN it was evaluated on (`*` for actions without a resource type).
pub fn access_denied_message(
    principal_arn: &str,
    action: &str,
    resource: &str,
    reason: DenialReason,
) -> String {
    let mut message = format!("User: {principal_arn} is not authorized to perform: {action}");
    if resource != "*" && !resource.is_empty() {
        message.push_str(" on resource: ");
        message.push_str(resource);
    }
    match reason {
        DenialReason::Implicit => {
            message.push_str(" because no identity-based policy allows the ");
            message.push_str(action);
            message.push_str(" action");
        }
        DenialReason::ExplicitPolicyDeny => {
            message.push_str(" with an explicit deny in an identity-based policy")
        }
        DenialReason::StackPermissionDeny => message.push_str(" with an explicit deny"),
    }
    message
}
