//! OpsWorks' own permission model beside IAM: per-stack permission levels, which action each
//! level grants, which actions only IAM can grant, and how OpsWorks combined the two.
//!
//! Sources: the User Guide's permission-level list (opsworks-security-users-standard), with the
//! API model's "Required Permissions" notes where the guide is silent: `RegisterEcsCluster`,
//! `DeregisterEcsCluster` and `UnassignInstance` are Manage actions (the guide's "every register,
//! assign ... action" and the model agree). `DescribeStackProvisioningParameters` follows the
//! guide (no level grants it; the model would give it to Show), as do `ListTags`, `TagResource`
//! and `UntagResource`, which no level lists.

use serde::{Deserialize, Serialize};

use crate::policy::{Decision, StatementRef};

/// A user's permission level on one stack (`SetPermission`'s `Level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionLevel {
    /// No OpsWorks action on the stack, even over an IAM policy that allows it.
    Deny,
    /// The `Describe*` actions, except the permission and profile ones.
    Show,
    /// Show, plus `CreateDeployment` and `UpdateApp`.
    Deploy,
    /// Deploy, plus the actions that change the stack's resources and permissions.
    Manage,
    /// No level: IAM policies alone decide. The default.
    IamOnly,
}

impl PermissionLevel {
    /// Every level, as `SetPermission` accepts them.
    pub const ALL: [PermissionLevel; 5] = [
        PermissionLevel::Deny,
        PermissionLevel::Show,
        PermissionLevel::Deploy,
        PermissionLevel::Manage,
        PermissionLevel::IamOnly,
    ];

    /// The level as the API writes it: `deny`, `show`, `deploy`, `manage`, `iam_only`.
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionLevel::Deny => "deny",
            PermissionLevel::Show => "show",
            PermissionLevel::Deploy => "deploy",
            PermissionLevel::Manage => "manage",
            PermissionLevel::IamOnly => "iam_only",
        }
    }

    /// The level named `s` as the API writes it; `None` for anything else.
    pub fn parse(s: &str) -> Option<PermissionLevel> {
        PermissionLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Rank among the granting levels: Show < Deploy < Manage; 0 for those that grant nothing.
    fn rank(self) -> u8 {
        match self {
            PermissionLevel::Deny | PermissionLevel::IamOnly => 0,
            PermissionLevel::Show => 1,
            PermissionLevel::Deploy => 2,
            PermissionLevel::Manage => 3,
        }
    }

    /// Whether this level grants `action` (`DeleteStack` or `opsworks:DeleteStack`).
    pub fn grants(self, action: &str) -> bool {
        match action_info(action).map(|a| a.grant) {
            Some(Grant::Level(min)) => self.rank() >= min.rank() && self.rank() > 0,
            _ => false,
        }
    }

    /// The operations this level grants, by name (`DescribeStacks`, ...).
    pub fn actions(self) -> impl Iterator<Item = &'static str> {
        OPSWORKS_ACTIONS
            .iter()
            .filter(move |a| self.grants(a.name))
            .map(|a| a.name)
    }
}

impl std::fmt::Display for PermissionLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an action authorizes against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The stack ARN `arn:aws:opsworks:REGION:ACCOUNT:stack/ID/`; the stack's permission level
    /// applies.
    Stack,
    /// No resource type: the resource is `*` and no stack's level applies.
    Account,
}

/// Who besides IAM may grant an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// Permission levels from this one up (Show, Deploy or Manage).
    Level(PermissionLevel),
    /// Only an IAM policy.
    IamOnly,
    /// The user profile's `AllowSelfManagement` flag (or an IAM policy).
    SelfManagement,
}

/// One OpsWorks operation and how it is authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActionInfo {
    /// The operation, e.g. `DeleteStack`.
    pub name: &'static str,
    /// The IAM action, e.g. `opsworks:DeleteStack`.
    pub iam_action: &'static str,
    /// Stack-scoped or not.
    pub scope: Scope,
    /// Who may grant it besides IAM.
    pub grant: Grant,
}

macro_rules! actions {
    ($($name:ident: $scope:ident, $grant:expr;)*) => {
        /// The 74 operations of the OpsWorks Stacks API (2013-02-18), sorted by name.
        pub static OPSWORKS_ACTIONS: &[ActionInfo] = &[$(ActionInfo {
            name: stringify!($name),
            iam_action: concat!("opsworks:", stringify!($name)),
            scope: Scope::$scope,
            grant: $grant,
        }),*];
    };
}

const SHOW: Grant = Grant::Level(PermissionLevel::Show);
const DEPLOY: Grant = Grant::Level(PermissionLevel::Deploy);
const MANAGE: Grant = Grant::Level(PermissionLevel::Manage);
const IAM: Grant = Grant::IamOnly;
const SELF: Grant = Grant::SelfManagement;

actions! {
    AssignInstance: Stack, MANAGE;
    AssignVolume: Stack, MANAGE;
    AssociateElasticIp: Stack, MANAGE;
    AttachElasticLoadBalancer: Stack, MANAGE;
    CloneStack: Stack, IAM;
    CreateApp: Stack, MANAGE;
    CreateDeployment: Stack, DEPLOY;
    CreateInstance: Stack, MANAGE;
    CreateLayer: Stack, MANAGE;
    CreateStack: Account, IAM;
    CreateUserProfile: Account, IAM;
    DeleteApp: Stack, MANAGE;
    DeleteInstance: Stack, MANAGE;
    DeleteLayer: Stack, MANAGE;
    DeleteStack: Stack, MANAGE;
    DeleteUserProfile: Account, IAM;
    DeregisterEcsCluster: Stack, MANAGE;
    DeregisterElasticIp: Stack, MANAGE;
    DeregisterInstance: Stack, MANAGE;
    DeregisterRdsDbInstance: Stack, MANAGE;
    DeregisterVolume: Stack, MANAGE;
    DescribeAgentVersions: Stack, SHOW;
    DescribeApps: Stack, SHOW;
    DescribeCommands: Stack, SHOW;
    DescribeDeployments: Stack, SHOW;
    DescribeEcsClusters: Stack, SHOW;
    DescribeElasticIps: Stack, SHOW;
    DescribeElasticLoadBalancers: Stack, SHOW;
    DescribeInstances: Stack, SHOW;
    DescribeLayers: Stack, SHOW;
    DescribeLoadBasedAutoScaling: Stack, SHOW;
    DescribeMyUserProfile: Account, SELF;
    DescribeOperatingSystems: Account, SHOW;
    DescribePermissions: Stack, MANAGE;
    DescribeRaidArrays: Stack, SHOW;
    DescribeRdsDbInstances: Stack, SHOW;
    DescribeServiceErrors: Stack, SHOW;
    DescribeStackProvisioningParameters: Stack, IAM;
    DescribeStackSummary: Stack, SHOW;
    DescribeStacks: Stack, SHOW;
    DescribeTimeBasedAutoScaling: Stack, SHOW;
    DescribeUserProfiles: Account, IAM;
    DescribeVolumes: Stack, SHOW;
    DetachElasticLoadBalancer: Stack, MANAGE;
    DisassociateElasticIp: Stack, MANAGE;
    GetHostnameSuggestion: Stack, MANAGE;
    GrantAccess: Stack, MANAGE;
    ListTags: Stack, IAM;
    RebootInstance: Stack, MANAGE;
    RegisterEcsCluster: Stack, MANAGE;
    RegisterElasticIp: Stack, MANAGE;
    RegisterInstance: Stack, MANAGE;
    RegisterRdsDbInstance: Stack, MANAGE;
    RegisterVolume: Stack, MANAGE;
    SetLoadBasedAutoScaling: Stack, MANAGE;
    SetPermission: Stack, MANAGE;
    SetTimeBasedAutoScaling: Stack, MANAGE;
    StartInstance: Stack, MANAGE;
    StartStack: Stack, MANAGE;
    StopInstance: Stack, MANAGE;
    StopStack: Stack, MANAGE;
    TagResource: Stack, IAM;
    UnassignInstance: Stack, MANAGE;
    UnassignVolume: Stack, MANAGE;
    UntagResource: Stack, IAM;
    UpdateApp: Stack, DEPLOY;
    UpdateElasticIp: Stack, MANAGE;
    UpdateInstance: Stack, MANAGE;
    UpdateLayer: Stack, MANAGE;
    UpdateMyUserProfile: Account, SELF;
    UpdateRdsDbInstance: Stack, MANAGE;
    UpdateStack: Stack, MANAGE;
    UpdateUserProfile: Account, IAM;
    UpdateVolume: Stack, MANAGE;
}

/// The operation named `action` (`DeleteStack` or `opsworks:DeleteStack`, the operation's exact
/// case); `None` for anything OpsWorks does not have.
pub fn action_info(action: &str) -> Option<&'static ActionInfo> {
    let name = strip_service(action)?;
    OPSWORKS_ACTIONS
        .binary_search_by(|a| a.name.cmp(name))
        .ok()
        .map(|i| &OPSWORKS_ACTIONS[i])
}

fn strip_service(action: &str) -> Option<&str> {
    match action.split_once(':') {
        Some((service, name)) if service.eq_ignore_ascii_case("opsworks") => Some(name),
        Some(_) => None,
        None => Some(action),
    }
}

/// What OpsWorks weighs beside the IAM decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Grants {
    /// The user's level on the request's stack; `None` when the action has no stack (or the
    /// user has no permission record there, which is `iam_only`).
    pub level: Option<PermissionLevel>,
    /// The user profile's `AllowSelfManagement`.
    pub self_management: bool,
}

/// Why a request was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowedBy {
    /// An IAM policy allows it.
    IamPolicy,
    /// The stack's permission level grants it.
    PermissionLevel(PermissionLevel),
    /// The user profile's self-management flag grants it.
    SelfManagement,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Denial {
    /// A Deny statement of an IAM policy applies.
    ExplicitPolicyDeny(StatementRef),
    /// The user's level on the stack is `deny`.
    StackPermissionDeny,
    /// Nothing grants it.
    NotGranted,
}

/// The combined outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Authorization {
    /// The request may go ahead.
    Allowed(AllowedBy),
    /// The request is refused and must change nothing.
    Denied(Denial),
}

impl Authorization {
    /// Whether the request may go ahead.
    pub fn is_allowed(self) -> bool {
        matches!(self, Authorization::Allowed(_))
    }
}

/// Combines the IAM decision with the stack's permission level as OpsWorks did: an explicit IAM
/// Deny refuses; so does the level `deny`; otherwise an IAM Allow or a level that grants the
/// action allows (either may, "the result can appear to override the Permissions page"); the
/// self-management flag allows `DescribeMyUserProfile` and `UpdateMyUserProfile`; otherwise
/// refused. The root user is never evaluated: it may do anything.
///
/// `action` is `DeleteStack` or `opsworks:DeleteStack`. An action OpsWorks does not have is
/// granted by IAM alone.
pub fn authorize(action: &str, iam: Decision, grants: Grants) -> Authorization {
    if let Decision::ExplicitDeny { statement } = iam {
        return Authorization::Denied(Denial::ExplicitPolicyDeny(statement));
    }
    if grants.level == Some(PermissionLevel::Deny) {
        return Authorization::Denied(Denial::StackPermissionDeny);
    }
    if iam == Decision::Allow {
        return Authorization::Allowed(AllowedBy::IamPolicy);
    }
    if let Some(level) = grants.level
        && level.grants(action)
    {
        return Authorization::Allowed(AllowedBy::PermissionLevel(level));
    }
    if grants.self_management
        && action_info(action).is_some_and(|a| a.grant == Grant::SelfManagement)
    {
        return Authorization::Allowed(AllowedBy::SelfManagement);
    }
    Authorization::Denied(Denial::NotGranted)
}

/// The resource OpsWorks authorizes a stack-scoped action on: `arn:aws:opsworks:REGION:ACCOUNT:stack/ID/`
/// (with the trailing slash).
pub fn stack_resource(region: &str, account: &str, stack_id: &str) -> String {
    format!("arn:aws:opsworks:{region}:{account}:stack/{stack_id}/")
}
