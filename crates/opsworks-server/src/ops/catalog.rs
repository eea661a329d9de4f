//! Catalog and diagnostics: DescribeOperatingSystems, DescribeAgentVersions,
//! DescribeServiceErrors.

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::catalog;
use opsworks_model::resource::{Instance, ServiceError, Stack};
use opsworks_store::Filter;

use super::{Ctx, OpResult, Reply, at_most_one, wire};
use crate::core::agent_releases;

/// DescribeOperatingSystems: what instances can run. A server that runs local instances lists
/// the one they really run (the host's own); the original's names stay accepted in requests. A
/// server that only records instances lists the original's catalog.
pub async fn describe_operating_systems(cx: Ctx<'_>, _req: serde_json::Value) -> OpResult {
    let listed: Vec<&catalog::OperatingSystem> = match catalog::local() {
        Some(local) if cx.core.machines().is_some() => vec![local],
        _ => catalog::OPERATING_SYSTEMS.iter().collect(),
    };
    let oses: Vec<shapes::OperatingSystem> = listed
        .into_iter()
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
/// configuration manager"). The server hands out its own build and the releases an operator
/// added (`opsworks agent-version add`); each serves every Chef version.
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
    let offered = agent_releases::versions(cx.core).await?;
    let agents: Vec<shapes::AgentVersion> = versions
        .into_iter()
        .flat_map(|cv| {
            let offered = &offered;
            catalog::agent_versions(cv)
                .into_iter()
                .map(str::to_string)
                .chain(offered.iter().skip(1).cloned())
                .map(move |av| shapes::AgentVersion {
                    version: Some(av),
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
        _ => {
            let mut all = core.list::<ServiceError>(Filter::All).await?;
            if !cx.principal.is_root() {
                // Only the errors of the stacks the caller may see.
                let mut visible = std::collections::HashMap::new();
                let mut kept = Vec::with_capacity(all.len());
                for e in all.drain(..) {
                    let ok = match visible.get(&e.stack_id) {
                        Some(ok) => *ok,
                        None => {
                            let ok = match core.find::<Stack>(&e.stack_id).await? {
                                Some(s) => super::authz::may(&cx, "DescribeServiceErrors", &s),
                                None => false,
                            };
                            visible.insert(e.stack_id.clone(), ok);
                            ok
                        }
                    };
                    if ok {
                        kept.push(e);
                    }
                }
                all = kept;
            }
            all
        }
    };
    let shown: Vec<shapes::ServiceError> = errors.iter().map(|e| wire::service_error(e)).collect();
    Reply::json(&json!({ "ServiceErrors": shown }))
}
