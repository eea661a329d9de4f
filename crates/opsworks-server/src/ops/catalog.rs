//! Catalog and diagnostics: DescribeOperatingSystems, DescribeAgentVersions,
//! DescribeServiceErrors; and [`record_service_error`], how the rest of the control plane reports
//! a service error against a stack or instance.

use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_model::{catalog, new_id};
use opsworks_store::{Filter, Kind};

use super::stacks::load_stack;
use super::{
    OpResult, Req, apply, at_most_one, list, load, now, public_view, put, required_str, str_list,
};
use crate::App;

/// DescribeOperatingSystems: the catalog of operating systems.
pub async fn describe_operating_systems(_app: &App, _req: Req) -> OpResult {
    let oses: Vec<Value> = catalog::OPERATING_SYSTEMS
        .iter()
        .map(|os| {
            json!({
                "Name": os.name,
                "Id": os.name,
                "Type": os.family,
                "ConfigurationManagers": os
                    .chef_versions
                    .iter()
                    .map(|v| json!({"Name": "Chef", "Version": v}))
                    .collect::<Vec<_>>(),
                "ReportedName": os.reported_name,
                "ReportedVersion": os.reported_version,
                "Supported": os.supported,
            })
        })
        .collect();
    Ok(json!({ "OperatingSystems": oses }))
}

/// DescribeAgentVersions: the agent versions for a stack (its configuration manager) or for a
/// configuration manager. Exactly one of the two is given ("You must specify a stack ID or a
/// configuration manager"). This server ships one agent, its own version, for every Chef version.
pub async fn describe_agent_versions(app: &App, req: Req) -> OpResult {
    let cm = match at_most_one(&req, &["StackId", "ConfigurationManager"])? {
        Some("StackId") => {
            let stack = load_stack(app, required_str(&req, "StackId")?).await?;
            stack
                .get("ConfigurationManager")
                .cloned()
                .unwrap_or_else(|| json!({"Name": "Chef", "Version": "12"}))
        }
        Some(_) => req
            .get("ConfigurationManager")
            .cloned()
            .unwrap_or(Value::Null),
        None => {
            return Err(ApiError::Validation(
                "You must specify a stack ID or a configuration manager".into(),
            ));
        }
    };
    let name = cm.get("Name").and_then(Value::as_str).unwrap_or("Chef");
    if !name.eq_ignore_ascii_case("chef") {
        return Err(ApiError::Validation(format!(
            "Unsupported configuration manager: {name}"
        )));
    }
    let versions: Vec<&str> = match cm.get("Version").and_then(Value::as_str) {
        Some(v) if !catalog::CHEF_VERSIONS.contains(&v) => {
            return Err(ApiError::Validation(format!(
                "Unsupported configuration manager version: {v}; supported are {}",
                catalog::CHEF_VERSIONS.join(", ")
            )));
        }
        Some(v) => vec![v],
        None => catalog::CHEF_VERSIONS.to_vec(),
    };
    let agents: Vec<Value> = versions
        .into_iter()
        .flat_map(|cv| {
            catalog::agent_versions(cv)
                .into_iter()
                .map(move |av| json!({"Version": av, "ConfigurationManager": {"Name": "Chef", "Version": cv}}))
        })
        .collect();
    Ok(json!({ "AgentVersions": agents }))
}

/// DescribeServiceErrors: those of a stack, of an instance, or those named; with none of the
/// three, every service error (the API's documented behaviour). At most one may be given.
pub async fn describe_service_errors(app: &App, req: Req) -> OpResult {
    let errors = match at_most_one(&req, &["StackId", "InstanceId", "ServiceErrorIds"])? {
        Some("StackId") => {
            let id = required_str(&req, "StackId")?;
            load_stack(app, id).await?;
            list(app, Kind::ServiceError, Filter::Stack(id)).await?
        }
        Some("InstanceId") => {
            let id = required_str(&req, "InstanceId")?;
            load(app, Kind::Instance, "instance", id).await?;
            list(app, Kind::ServiceError, Filter::Parent(id)).await?
        }
        Some(_) => {
            let ids = str_list(&req, "ServiceErrorIds").unwrap_or_default();
            let found = list(app, Kind::ServiceError, Filter::Ids(&ids)).await?;
            if let Some(missing) = ids.iter().find(|id| {
                !found
                    .iter()
                    .any(|e| e.get("ServiceErrorId").and_then(Value::as_str) == Some(id.as_str()))
            }) {
                return Err(ApiError::not_found("service error", missing));
            }
            found
        }
        None => list(app, Kind::ServiceError, Filter::All).await?,
    };
    Ok(json!({ "ServiceErrors": errors.into_iter().map(public_view).collect::<Vec<_>>() }))
}

/// Records a service error (`Type` is `kind`, e.g. `instance-start-failed`) against a stack and,
/// when given, one of its instances, whose `LastServiceErrorId` then names it. Returns its ID.
///
/// `message` is shown to API callers as is: it must not carry secrets.
pub async fn record_service_error(
    app: &App,
    stack_id: &str,
    instance_id: Option<&str>,
    kind: &str,
    message: &str,
) -> Result<String, ApiError> {
    let _guard = app.write_lock().await;
    record_service_error_locked(app, stack_id, instance_id, kind, message).await
}

/// [`record_service_error`] for callers that already hold the write lock.
pub async fn record_service_error_locked(
    app: &App,
    stack_id: &str,
    instance_id: Option<&str>,
    kind: &str,
    message: &str,
) -> Result<String, ApiError> {
    let id = new_id();
    let mut doc = json!({
        "ServiceErrorId": id,
        "StackId": stack_id,
        "Type": kind,
        "Message": message,
        "CreatedAt": now(),
    });
    let mut writes = Vec::with_capacity(2);
    if let Some(iid) = instance_id {
        doc["InstanceId"] = json!(iid);
        // Only this member of the instance changes; its status stays with instances.rs.
        let mut inst = load(app, Kind::Instance, "instance", iid).await?;
        inst["LastServiceErrorId"] = json!(id);
        writes.push(put(Kind::Instance, iid, stack_id, None, inst));
    }
    writes.insert(0, put(Kind::ServiceError, &id, stack_id, instance_id, doc));
    apply(app, writes).await?;
    tracing::info!(service_error_id = %id, stack_id, instance_id, kind, "service error recorded");
    let mut event = crate::events::new_event(stack_id, crate::events::SERVICE_ERROR);
    event.instance_id = instance_id.map(String::from);
    event.detail = json!({"ServiceErrorId": id, "Type": kind, "Message": message});
    crate::events::record(app, event).await;
    Ok(id)
}

/// Test helpers shared by the operation families' tests: a real `App` on a temporary data dir.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ServerConfig;
    use crate::ops::{Caller, dispatch};

    /// A real server state on a temporary data dir (SQLite file, master key).
    pub(crate) async fn open() -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ServerConfig::new(dir.path().join("data"));
        config.root_key = Some(("AKIDTEST".into(), "secret".into()));
        let (app, _) = App::open(&config).await.expect("open app");
        (dir, app)
    }

    /// Runs an operation as root, as the HTTP edge would after authentication.
    pub(crate) async fn call(app: &App, op: &str, body: Value) -> Result<Value, ApiError> {
        let caller = Caller {
            access_key_id: "AKIDTEST".into(),
            principal: "root".into(),
            region: "us-east-1".into(),
        };
        dispatch(app, &caller, op, body).await?.into_value()
    }

    /// A stack with one custom layer: (stack ID, layer ID).
    pub(crate) async fn stack_and_layer(app: &App) -> (String, String) {
        let stack = call(
            app,
            "CreateStack",
            json!({"Name": "s", "Region": "us-east-1", "ServiceRoleArn": "arn:aws:iam::1:role/r",
                   "DefaultInstanceProfileArn": "arn:aws:iam::1:instance-profile/p"}),
        )
        .await
        .expect("stack");
        let sid = stack["StackId"].as_str().expect("stack id").to_string();
        let layer = call(
            app,
            "CreateLayer",
            json!({"StackId": sid, "Type": "custom", "Name": "web", "Shortname": "web"}),
        )
        .await
        .expect("layer");
        (
            sid,
            layer["LayerId"].as_str().expect("layer id").to_string(),
        )
    }

    /// A stack with one custom layer and one (stopped) instance: (stack ID, instance ID).
    pub(crate) async fn stack_with_instance(app: &App) -> (String, String) {
        let (sid, lid) = stack_and_layer(app).await;
        let inst = call(
            app,
            "CreateInstance",
            json!({"StackId": sid, "LayerIds": [lid], "InstanceType": "t2.micro"}),
        )
        .await
        .expect("instance");
        (
            sid,
            inst["InstanceId"]
                .as_str()
                .expect("instance id")
                .to_string(),
        )
    }

    #[tokio::test]
    async fn recorded_service_errors_are_described_and_linked_from_the_instance() {
        let (_dir, app) = open().await;
        let (sid, iid) = stack_with_instance(&app).await;
        let before = call(&app, "DescribeInstances", json!({"InstanceIds": [iid]}))
            .await
            .expect("describe");
        let status = before["Instances"][0]["Status"].clone();

        let on_instance = record_service_error(
            &app,
            &sid,
            Some(&iid),
            "instance-start-failed",
            "no capacity",
        )
        .await
        .expect("record");
        let on_stack = record_service_error(&app, &sid, None, "stack-error", "stack trouble")
            .await
            .expect("record");

        let by_instance = call(&app, "DescribeServiceErrors", json!({"InstanceId": iid}))
            .await
            .expect("describe");
        let errors = by_instance["ServiceErrors"].as_array().expect("list");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["ServiceErrorId"], json!(on_instance));
        assert_eq!(errors[0]["InstanceId"], json!(iid));
        assert_eq!(errors[0]["StackId"], json!(sid));
        assert_eq!(errors[0]["Type"], json!("instance-start-failed"));
        assert_eq!(errors[0]["Message"], json!("no capacity"));
        assert!(
            errors[0]["CreatedAt"]
                .as_str()
                .is_some_and(|t| t.ends_with("+00:00"))
        );

        let by_stack = call(&app, "DescribeServiceErrors", json!({"StackId": sid}))
            .await
            .expect("describe");
        assert_eq!(by_stack["ServiceErrors"].as_array().map(Vec::len), Some(2));
        let by_ids = call(
            &app,
            "DescribeServiceErrors",
            json!({"ServiceErrorIds": [on_stack]}),
        )
        .await
        .expect("describe");
        assert!(by_ids["ServiceErrors"][0].get("InstanceId").is_none());

        // The instance names its latest error; its status is untouched.
        let after = call(&app, "DescribeInstances", json!({"InstanceIds": [iid]}))
            .await
            .expect("describe");
        assert_eq!(
            after["Instances"][0]["LastServiceErrorId"],
            json!(on_instance)
        );
        assert_eq!(after["Instances"][0]["Status"], status);

        let missing = call(
            &app,
            "DescribeServiceErrors",
            json!({"ServiceErrorIds": [on_stack, "nope"]}),
        )
        .await;
        assert_eq!(missing, Err(ApiError::not_found("service error", "nope")));
        let both = call(
            &app,
            "DescribeServiceErrors",
            json!({"StackId": sid, "InstanceId": iid}),
        )
        .await;
        assert!(matches!(both, Err(ApiError::Validation(_))), "{both:?}");
    }

    #[tokio::test]
    async fn agent_versions_follow_the_stack_or_the_configuration_manager() {
        let (_dir, app) = open().await;
        let (sid, _) = stack_with_instance(&app).await;
        let by_stack = call(&app, "DescribeAgentVersions", json!({"StackId": sid}))
            .await
            .expect("versions");
        assert_eq!(
            by_stack["AgentVersions"],
            json!([{"Version": catalog::AGENT_VERSION, "ConfigurationManager": {"Name": "Chef", "Version": "12"}}])
        );
        let all = call(
            &app,
            "DescribeAgentVersions",
            json!({"ConfigurationManager": {"Name": "Chef"}}),
        )
        .await
        .expect("all");
        assert_eq!(
            all["AgentVersions"].as_array().map(Vec::len),
            Some(catalog::CHEF_VERSIONS.len())
        );
        let none = call(&app, "DescribeAgentVersions", json!({})).await;
        assert!(matches!(none, Err(ApiError::Validation(_))), "{none:?}");
        let bad = call(
            &app,
            "DescribeAgentVersions",
            json!({"ConfigurationManager": {"Name": "Chef", "Version": "13"}}),
        )
        .await;
        assert!(matches!(bad, Err(ApiError::Validation(_))), "{bad:?}");
    }
}
