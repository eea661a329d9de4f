//! Catalog and diagnostics: DescribeOperatingSystems, DescribeAgentVersions,
//! DescribeServiceErrors.

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::catalog;
use opsworks_model::resource::{Instance, ServiceError, Stack};
use opsworks_store::Filter;

use super::{Ctx, OpResult, Reply, at_most_one, wire};

/// DescribeOperatingSystems: the catalog of operating systems.
pub async fn describe_operating_systems(_cx: Ctx<'_>, _req: serde_json::Value) -> OpResult {
    let oses: Vec<shapes::OperatingSystem> = catalog::OPERATING_SYSTEMS
        .iter()
        .map(|os| shapes::OperatingSystem {
            name: Some(os.name.into()),
            id: Some(os.name.into()),
            r#type: Some(os.family.into()),
            configuration_managers: Some(
                os.chef_versions
                    .iter()
                    .map(|v| shapes::OperatingSystemConfigurationManager {
                        name: Some("Chef".into()),
                        version: Some(v.to_string()),
                    })
                    .collect(),
            ),
            reported_name: Some(os.reported_name.into()),
            reported_version: Some(os.reported_version.into()),
            supported: Some(os.supported),
        })
        .collect();
    Reply::json(&json!({ "OperatingSystems": oses }))
}

/// DescribeAgentVersions: the agent versions for a stack (its configuration manager) or for a
/// configuration manager. Exactly one of the two is given ("You must specify a stack ID or a
/// configuration manager"). This server ships one agent, its own version, for every Chef version.
pub async fn describe_agent_versions(
    cx: Ctx<'_>,
    req: shapes::DescribeAgentVersionsRequest,
) -> OpResult {
    let given = at_most_one(&[
        ("StackId", req.stack_id.is_some()),
        ("ConfigurationManager", req.configuration_manager.is_some()),
    ])?;
    let (name, version) = match (given, &req.stack_id, &req.configuration_manager) {
        (Some("StackId"), Some(id), _) => {
            let stack = cx.core.get::<Stack>(id).await?;
            (
                stack.configuration_manager.name.clone(),
                Some(stack.configuration_manager.version.clone()),
            )
        }
        (Some(_), _, Some(cm)) => (
            cm.name.clone().unwrap_or_else(|| "Chef".into()),
            cm.version.clone(),
        ),
        _ => {
            return Err(ApiError::Validation(
                "You must specify a stack ID or a configuration manager".into(),
            ));
        }
    };
    if !name.eq_ignore_ascii_case("chef") {
        return Err(ApiError::Validation(format!(
            "Unsupported configuration manager: {name}"
        )));
    }
    let versions: Vec<&str> = match version.as_deref() {
        Some(v) if !catalog::CHEF_VERSIONS.contains(&v) => {
            return Err(ApiError::Validation(format!(
                "Unsupported configuration manager version: {v}; supported are {}",
                catalog::CHEF_VERSIONS.join(", ")
            )));
        }
        Some(v) => vec![v],
        None => catalog::CHEF_VERSIONS.to_vec(),
    };
    let agents: Vec<shapes::AgentVersion> = versions
        .into_iter()
        .flat_map(|cv| {
            catalog::agent_versions(cv)
                .into_iter()
                .map(move |av| shapes::AgentVersion {
                    version: Some(av.to_string()),
                    configuration_manager: Some(shapes::StackConfigurationManager {
                        name: Some("Chef".into()),
                        version: Some(cv.to_string()),
                    }),
                })
        })
        .collect();
    Reply::json(&json!({ "AgentVersions": agents }))
}

/// DescribeServiceErrors: those of a stack, of an instance, or those named; with none of the
/// three, every service error (the API's documented behaviour). At most one may be given.
pub async fn describe_service_errors(
    cx: Ctx<'_>,
    req: shapes::DescribeServiceErrorsRequest,
) -> OpResult {
    let core = cx.core;
    let given = at_most_one(&[
        ("StackId", req.stack_id.is_some()),
        ("InstanceId", req.instance_id.is_some()),
        ("ServiceErrorIds", req.service_error_ids.is_some()),
    ])?;
    let errors = match (
        given,
        &req.stack_id,
        &req.instance_id,
        &req.service_error_ids,
    ) {
        (Some("StackId"), Some(id), _, _) => {
            core.get::<Stack>(id).await?;
            core.list::<ServiceError>(Filter::Stack(id)).await?
        }
        (Some("InstanceId"), _, Some(id), _) => {
            core.get::<Instance>(id).await?;
            core.list::<ServiceError>(Filter::Instance(id)).await?
        }
        (Some(_), _, _, Some(ids)) => core.get_all::<ServiceError>(ids).await?,
        _ => core.list::<ServiceError>(Filter::All).await?,
    };
    let shown: Vec<shapes::ServiceError> = errors.iter().map(|e| wire::service_error(e)).collect();
    Reply::json(&json!({ "ServiceErrors": shown }))
}
