//! The operations, one module per resource family, and what they share.
//!
//! Every handler is named after the operation it serves (`describe_stacks`), takes the request
//! decoded into its typed shape (already validated against the service model) and checks only
//! what the model does not carry: lengths, cross-member rules, the stored state. What leaves as
//! the answer is made from typed resources in one place per resource ([`wire`]).

pub mod apps;
pub mod authz;
pub mod catalog;
pub mod deployments;
pub mod ec2;
pub mod elastic_ips;
pub mod elastic_load_balancers;
pub mod elb;
pub mod iam;
pub mod instances;
pub mod layers;
pub mod query_calls;
pub mod rds;
pub mod rds_db_instances;
pub mod registration;
pub mod scaling;
pub mod stacks;
pub mod sts;
pub mod tags;
pub mod users;
pub mod volumes;
pub mod wire;

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use opsworks_api::ApiError;

use crate::core::identity::UserAccess;
use crate::core::{Core, audit};

/// Who is calling: the account's root or an IAM user, and what the policies evaluated for each
/// request need to know of the call (where it came from, over what).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The access key that signed the request (empty for the console's root).
    pub access_key_id: String,
    /// Whom the key belongs to (`root`, or a user's ARN).
    pub name: String,
    /// The region of the signature's scope.
    pub region: String,
    /// The IAM user and what they may do; `None` for the account's root, which may do anything.
    pub user: Option<Arc<UserAccess>>,
    /// The address the request came from (`aws:SourceIp`), when known.
    pub source_ip: Option<IpAddr>,
    /// Whether the request came over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
}

impl Principal {
    /// The account's root, as the console acts.
    pub fn root(region: &str) -> Self {
        Self {
            access_key_id: String::new(),
            name: crate::core::keys::ROOT.to_string(),
            region: region.to_string(),
            user: None,
            source_ip: None,
            secure_transport: false,
        }
    }

    /// An IAM user, signing with `access_key_id`.
    pub fn iam_user(access: Arc<UserAccess>, access_key_id: &str, region: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_string(),
            name: access.arn.clone(),
            region: region.to_string(),
            user: Some(access),
            source_ip: None,
            secure_transport: false,
        }
    }

    /// The same caller, seen coming from `ip`.
    pub fn from_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.source_ip = ip;
        self
    }

    /// Whether this is the account's root.
    pub fn is_root(&self) -> bool {
        self.user.is_none()
    }

    /// The ARN a deployment records as `IamUserArn`: the account's root for the root key, the
    /// principal itself when it is an ARN.
    pub fn arn(&self, account_id: &str) -> Option<String> {
        if self.name == crate::core::keys::ROOT {
            Some(format!("arn:aws:iam::{account_id}:root"))
        } else if self.name.starts_with("arn:") {
            Some(self.name.clone())
        } else {
            None
        }
    }
}

/// What every handler gets: the core and the caller.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The control plane's state.
    pub core: &'a Core,
    /// Who calls.
    pub principal: &'a Principal,
}

/// An answer's body, serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply(pub Vec<u8>);

impl Reply {
    /// The body of a value.
    pub fn json(value: &impl Serialize) -> Result<Self, ApiError> {
        serde_json::to_vec(value)
            .map(Reply)
            .map_err(|e| ApiError::Internal(format!("serializing the answer: {e}")))
    }

    /// `{}`.
    pub fn empty() -> Self {
        Reply(b"{}".to_vec())
    }

    /// `{"<member>": [item, item, ...]}` from items already serialized.
    pub fn list<'a>(member: &str, items: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(member.as_bytes());
        out.extend_from_slice(b"\":[");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item);
        }
        out.extend_from_slice(b"]}");
        Reply(out)
    }

    /// The body as a value (for tests and the console).
    pub fn into_value(self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.0)
            .map_err(|e| ApiError::Internal(format!("answer is not JSON: {e}")))
    }
}

/// What an operation returns.
pub type OpResult = Result<Reply, ApiError>;

/// The validated input as its typed shape. The model's validation has checked types already, so
/// what fails here is a member a strict shape does not know (a misspelt weekday).
fn decode<T: DeserializeOwned>(input: Value) -> Result<T, ApiError> {
    serde_json::from_value(input).map_err(|e| ApiError::Validation(capitalized(e)))
}

macro_rules! operations {
    ($cx:expr, $operation:expr, $input:expr, { $($name:literal => $handler:path,)* }) => {
        match $operation {
            $( $name => $handler($cx, decode($input)?).await, )*
            other => Err(unsupported(other)),
        }
    };
}

/// Runs the operation named `operation` (known to the model) with its validated input, for the
/// caller if their policies and permission levels allow it ([`authz`]); a call that may change
/// something is written to the audit log with its outcome, refused or not.
pub async fn dispatch(cx: Ctx<'_>, operation: &str, input: Value) -> OpResult {
    let mutating = audit::is_mutating(operation);
    if cx.principal.is_root() && !mutating {
        // The root's reads: nothing to decide, nothing to record.
        return run(cx, operation, input).await;
    }
    let targets = authz::targets(cx.core, &input).await?;
    let result = match authz::check(&cx, operation, &targets) {
        Ok(()) => run(cx, operation, input).await,
        Err(e) => Err(e),
    };
    if mutating {
        record(cx, "opsworks", operation, &targets, &result).await;
    }
    result
}

/// Writes a call of `service` to the audit log.
async fn record(
    cx: Ctx<'_>,
    service: &str,
    operation: &str,
    targets: &authz::Targets,
    result: &OpResult,
) {
    let created = match (&targets.target, result) {
        (None, Ok(reply)) => serde_json::from_slice::<Value>(&reply.0)
            .ok()
            .and_then(|v| {
                v.as_object()?
                    .values()
                    .find_map(|x| x.as_str().map(str::to_string))
            }),
        _ => None,
    };
    let principal = cx
        .principal
        .arn(cx.core.account_id())
        .unwrap_or_else(|| cx.principal.name.clone());
    let mut detail = serde_json::Map::new();
    if !cx.principal.access_key_id.is_empty() {
        detail.insert(
            "AccessKeyId".into(),
            cx.principal.access_key_id.clone().into(),
        );
    }
    if let Err(e) = result {
        detail.insert("Message".into(), e.message().to_string().into());
    }
    audit::record(
        cx.core,
        audit::Call {
            principal: &principal,
            source_ip: authz::source(cx.principal),
            service,
            operation,
            stack_id: targets.stack_id(),
            target: targets.target.as_deref().or(created.as_deref()),
            outcome: match result {
                Ok(_) => "Success",
                Err(e) => e.code(),
            },
            detail: Value::Object(detail),
        },
    )
    .await;
}

/// Runs the handler of `operation`.
async fn run(cx: Ctx<'_>, operation: &str, input: Value) -> OpResult {
    operations!(cx, operation, input, {
        "CreateStack" => stacks::create_stack,
        "DescribeStacks" => stacks::describe_stacks,
        "UpdateStack" => stacks::update_stack,
        "DeleteStack" => stacks::delete_stack,
        "CloneStack" => stacks::clone_stack,
        "DescribeStackSummary" => stacks::describe_stack_summary,
        "StartStack" => stacks::start_stack,
        "StopStack" => stacks::stop_stack,
        "DescribeStackProvisioningParameters" => stacks::describe_stack_provisioning_parameters,
        "CreateLayer" => layers::create_layer,
        "DescribeLayers" => layers::describe_layers,
        "UpdateLayer" => layers::update_layer,
        "DeleteLayer" => layers::delete_layer,
        "GetHostnameSuggestion" => layers::get_hostname_suggestion,
        "CreateInstance" => instances::create_instance,
        "DescribeInstances" => instances::describe_instances,
        "UpdateInstance" => instances::update_instance,
        "DeleteInstance" => instances::delete_instance,
        "StartInstance" => instances::start_instance,
        "StopInstance" => instances::stop_instance,
        "RebootInstance" => instances::reboot_instance,
        "RegisterInstance" => registration::register_instance,
        "AssignInstance" => registration::assign_instance,
        "UnassignInstance" => registration::unassign_instance,
        "DeregisterInstance" => registration::deregister_instance,
        "CreateApp" => apps::create_app,
        "DescribeApps" => apps::describe_apps,
        "UpdateApp" => apps::update_app,
        "DeleteApp" => apps::delete_app,
        "CreateDeployment" => deployments::create_deployment,
        "DescribeDeployments" => deployments::describe_deployments,
        "DescribeCommands" => deployments::describe_commands,
        "DescribeOperatingSystems" => catalog::describe_operating_systems,
        "DescribeAgentVersions" => catalog::describe_agent_versions,
        "DescribeServiceErrors" => catalog::describe_service_errors,
        "SetTimeBasedAutoScaling" => scaling::set_time_based_auto_scaling,
        "DescribeTimeBasedAutoScaling" => scaling::describe_time_based_auto_scaling,
        "SetLoadBasedAutoScaling" => scaling::set_load_based_auto_scaling,
        "DescribeLoadBasedAutoScaling" => scaling::describe_load_based_auto_scaling,
        "TagResource" => tags::tag_resource,
        "UntagResource" => tags::untag_resource,
        "ListTags" => tags::list_tags,
        "CreateUserProfile" => users::create_user_profile,
        "DescribeUserProfiles" => users::describe_user_profiles,
        "UpdateUserProfile" => users::update_user_profile,
        "DeleteUserProfile" => users::delete_user_profile,
        "DescribeMyUserProfile" => users::describe_my_user_profile,
        "UpdateMyUserProfile" => users::update_my_user_profile,
        "SetPermission" => users::set_permission,
        "DescribePermissions" => users::describe_permissions,
        "GrantAccess" => users::grant_access,
        "RegisterRdsDbInstance" => rds_db_instances::register_rds_db_instance,
        "DescribeRdsDbInstances" => rds_db_instances::describe_rds_db_instances,
        "UpdateRdsDbInstance" => rds_db_instances::update_rds_db_instance,
        "DeregisterRdsDbInstance" => rds_db_instances::deregister_rds_db_instance,
        "RegisterElasticIp" => elastic_ips::register_elastic_ip,
        "AssociateElasticIp" => elastic_ips::associate_elastic_ip,
        "DisassociateElasticIp" => elastic_ips::disassociate_elastic_ip,
        "UpdateElasticIp" => elastic_ips::update_elastic_ip,
        "DescribeElasticIps" => elastic_ips::describe_elastic_ips,
        "DeregisterElasticIp" => elastic_ips::deregister_elastic_ip,
        "RegisterVolume" => volumes::register_volume,
        "UpdateVolume" => volumes::update_volume,
        "AssignVolume" => volumes::assign_volume,
        "UnassignVolume" => volumes::unassign_volume,
        "DescribeVolumes" => volumes::describe_volumes,
        "DeregisterVolume" => volumes::deregister_volume,
        "DescribeRaidArrays" => volumes::describe_raid_arrays,
        "AttachElasticLoadBalancer" => elastic_load_balancers::attach_elastic_load_balancer,
        "DetachElasticLoadBalancer" => elastic_load_balancers::detach_elastic_load_balancer,
        "DescribeElasticLoadBalancers" => elastic_load_balancers::describe_elastic_load_balancers,
    })
}

/// The error of an operation of the model this server does not implement yet.
pub fn unsupported(operation: &str) -> ApiError {
    ApiError::UnsupportedOperation(format!(
        "The operation {operation} is not supported by this OpsWorks server yet"
    ))
}

/// A required string member: present (the model says so) and not blank.
pub fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    match value.as_deref() {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(ApiError::Validation(format!("{name} must not be empty"))),
    }
}

/// Refuses a string longer than `max` characters.
pub fn check_len(value: Option<&str>, name: &str, max: usize) -> Result<(), ApiError> {
    match value {
        Some(s) if s.chars().count() > max => Err(ApiError::Validation(format!(
            "{name} must be at most {max} characters long; it is {}",
            s.chars().count()
        ))),
        _ => Ok(()),
    }
}

/// Refuses a `CustomJson` that is not a JSON object within the size limit.
pub fn check_custom_json(value: Option<&str>) -> Result<(), ApiError> {
    if let Some(s) = value {
        opsworks_model::limits::check_custom_json(s)
            .map_err(|e| ApiError::Validation(e.to_string()))?;
    }
    Ok(())
}

/// At most one of the members given (by name, whether present) may be present: the rule of the
/// Describe calls. Returns the one given.
pub fn at_most_one<'a>(given: &[(&'a str, bool)]) -> Result<Option<&'a str>, ApiError> {
    let present: Vec<&str> = given.iter().filter(|(_, p)| *p).map(|(n, _)| *n).collect();
    match present.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(ApiError::Validation(format!(
            "Please provide no more than one of {}",
            given.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The secret kept when an update echoes the FILTERED marker back (clients that describe, edit
/// and update do): a round trip never overwrites a secret with the marker.
pub fn keep_secret(new: Option<String>, old: Option<&String>) -> Option<String> {
    match new {
        Some(v) if v == opsworks_api::FILTERED => old.cloned(),
        other => other,
    }
}

/// Capitalizes a model error's lowercase message, as AWS's messages start.
pub fn capitalized(e: impl std::fmt::Display) -> String {
    let msg = e.to_string();
    let mut c = msg.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod resource_tests;
#[cfg(test)]
mod tests;
