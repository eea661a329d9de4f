//! The stack's RDS databases, as the original's RDS tab of the layers page shows them: the
//! databases registered with the stack (deregister one), and the RDS catalog's available
//! databases that no stack has registered yet (register one with a user and password, which the
//! server checks by signing in).

use axum::extract::Path;
use axum::response::Response;
use serde_json::{Value, json};

use opsworks_model::resource::RdsDbInstance;
use opsworks_server::ops;
use opsworks_store::Filter;

use crate::Signed;
use crate::form::{SignedForm, s};
use crate::render::{failure, list, see_other};

/// What the stack page shows of RDS: `{"registered": [...], "available": [...]}`. The catalog
/// is read as the signed-in principal (`rds:DescribeDBInstances`); one it may not read, or that
/// cannot be read, shows as empty (the page shows what it can, like its other sections).
pub async fn stack_databases(signed: &Signed, stack_id: &str) -> Value {
    let registered = list(
        signed,
        "DescribeRdsDbInstances",
        json!({ "StackId": stack_id }),
        "RdsDbInstances",
    )
    .await;
    // Databases registered with any stack are not offered (one stack per database).
    let taken: Vec<String> = signed
        .console()
        .app()
        .list::<RdsDbInstance>(Filter::All)
        .await
        .map(|all| all.iter().map(|r| r.rds_db_instance_arn.clone()).collect())
        .unwrap_or_default();
    let catalog = ops::rds::dispatch(signed.cx(), "DescribeDBInstances", json!({}))
        .await
        .ok()
        .and_then(|v| v.get("DBInstances").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let available: Vec<Value> = catalog
        .iter()
        .filter(|d| s(d, "DBInstanceStatus") == "available")
        .filter(|d| !taken.iter().any(|t| t == s(d, "DBInstanceArn")))
        .map(|d| {
            json!({
                "Arn": s(d, "DBInstanceArn"),
                "Identifier": s(d, "DBInstanceIdentifier"),
                "Engine": s(d, "Engine"),
                "Address": d.pointer("/Endpoint/Address").and_then(Value::as_str).unwrap_or_default(),
                "Port": d.pointer("/Endpoint/Port").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({ "registered": registered, "available": available })
}

/// `POST /console/stacks/{id}/rds/register`: RegisterRdsDbInstance with the form's ARN, user
/// and password.
pub async fn register(
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let input = json!({
        "StackId": stack_id,
        "RdsDbInstanceArn": form.get("Arn"),
        "DbUser": form.get("DbUser"),
        "DbPassword": form.get("DbPassword"),
    });
    match signed.call("RegisterRdsDbInstance", input).await {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => failure(&signed, e),
    }
}

/// `POST /console/stacks/{id}/rds/deregister`: DeregisterRdsDbInstance (the database keeps
/// running).
pub async fn deregister(
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let input = json!({ "RdsDbInstanceArn": form.get("Arn") });
    match signed.call("DeregisterRdsDbInstance", input).await {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => failure(&signed, e),
    }
}
