//! The stack's RDS databases, as the original's RDS tab of the layers page shows them: the
//! databases registered with the stack (deregister one), and the RDS catalog's available
//! databases that no stack has registered yet (register one with a user and password, which the
//! server checks by signing in).

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use opsworks_model::resource::{DbInstance, RdsDbInstance};
use opsworks_store::Filter;

use crate::Console;
use crate::form::{SignedForm, s};
use crate::render::{failure, list, see_other};

/// What the stack page shows of RDS: `{"registered": [...], "available": [...]}`. A catalog that
/// cannot be read shows as empty (the page shows what it can, like its other sections).
pub async fn stack_databases(console: &Console, stack_id: &str) -> Value {
    let registered = list(
        console,
        "DescribeRdsDbInstances",
        json!({ "StackId": stack_id }),
        "RdsDbInstances",
    )
    .await;
    let core = console.app();
    let taken: Vec<String> = core
        .list::<RdsDbInstance>(Filter::All)
        .await
        .map(|all| all.iter().map(|r| r.rds_db_instance_arn.clone()).collect())
        .unwrap_or_default();
    let mut available: Vec<Value> = core
        .list::<DbInstance>(Filter::All)
        .await
        .map(|all| {
            all.iter()
                .filter(|d| d.status == "available" && !taken.contains(&d.db_instance_arn))
                .map(|d| {
                    json!({
                        "Arn": d.db_instance_arn,
                        "Identifier": d.db_instance_identifier,
                        "Engine": d.engine,
                        "Address": d.address.clone().unwrap_or_default(),
                        "Port": d.port,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    available.sort_by(|a, b| s(a, "Identifier").cmp(s(b, "Identifier")));
    json!({ "registered": registered, "available": available })
}

/// `POST /console/stacks/{id}/rds/register`: RegisterRdsDbInstance with the form's ARN, user
/// and password.
pub async fn register(
    State(console): State<Console>,
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let input = json!({
        "StackId": stack_id,
        "RdsDbInstanceArn": form.get("Arn"),
        "DbUser": form.get("DbUser"),
        "DbPassword": form.get("DbPassword"),
    });
    match console.call("RegisterRdsDbInstance", input).await {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => failure(&console, &signed, e),
    }
}

/// `POST /console/stacks/{id}/rds/deregister`: DeregisterRdsDbInstance (the database keeps
/// running).
pub async fn deregister(
    State(console): State<Console>,
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let input = json!({ "RdsDbInstanceArn": form.get("Arn") });
    match console.call("DeregisterRdsDbInstance", input).await {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => failure(&console, &signed, e),
    }
}
