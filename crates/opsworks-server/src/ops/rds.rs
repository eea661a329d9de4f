//! RDS on the server's own endpoint (the Query protocol, driven by botocore's `rds` model):
//! CreateDBInstance, DescribeDBInstances, ModifyDBInstance, RebootDBInstance and
//! DeleteDBInstance, served by real databases on this host (`core::rds`). Each call is
//! authorized for its caller (`rds:<Operation>` on the DB instance's ARN, `...:db:*` for a
//! listing; the root may do anything) and, when it may change something, written to the audit
//! log. Other RDS operations answer `UnsupportedOperation`; errors carry RDS's codes
//! (`DBInstanceNotFound`, `DBInstanceAlreadyExists`, `InvalidDBInstanceState`,
//! `InvalidParameterValue`, `InvalidParameterCombination`).

mod db_instances;

use futures_util::future::BoxFuture;
use serde_json::Value;

use opsworks_api::query::AwsError;

use super::Ctx;
use super::query_calls::{self, Call, access_denied, core_error};
use crate::core::rds::RdsError;

pub use db_instances::db_instance_shape;

/// What an RDS handler returns.
pub type RdsCall = Result<Value, AwsError>;

/// Runs an RDS operation for the caller: the handler table of the Query endpoint's `rds`
/// service.
pub fn dispatch<'a>(cx: Ctx<'a>, operation: &'a str, input: Value) -> BoxFuture<'a, RdsCall> {
    Box::pin(async move {
        let target = target_of(cx, &input);
        let call = Call {
            service: "rds",
            operation,
            target: &target,
            denied: access_denied,
        };
        query_calls::run(cx, call, run(cx, operation, &input), |_| None).await
    })
}

async fn run(cx: Ctx<'_>, operation: &str, input: &Value) -> RdsCall {
    match operation {
        "CreateDBInstance" => db_instances::create_db_instance(cx, input).await,
        "DescribeDBInstances" => db_instances::describe_db_instances(cx, input).await,
        "ModifyDBInstance" => db_instances::modify_db_instance(cx, input).await,
        "RebootDBInstance" => db_instances::reboot_db_instance(cx, input).await,
        "DeleteDBInstance" => db_instances::delete_db_instance(cx, input).await,
        other => Err(AwsError::UnsupportedOperation {
            message: format!("The operation {other} of RDS is not supported by this server."),
        }),
    }
}

/// The ARN a call acts on: the DB instance's, or every DB instance's for a listing.
fn target_of(cx: Ctx<'_>, input: &Value) -> String {
    let id = s(input, "DBInstanceIdentifier")
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "*".to_string());
    opsworks_model::rds::db_arn(cx.core.region(), cx.core.account_id(), &id)
}

/// A string member of the input.
fn s<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// The core's refusal in RDS's terms.
pub fn rds_error(e: RdsError) -> AwsError {
    match e {
        RdsError::NotFound(id) => {
            AwsError::service("DBInstanceNotFound", format!("DBInstance {id} not found."))
        }
        RdsError::AlreadyExists(_) => {
            AwsError::service("DBInstanceAlreadyExists", "DB instance already exists")
        }
        RdsError::InvalidState(m) => AwsError::service("InvalidDBInstanceState", m),
        RdsError::Rule(r) => AwsError::Invalid {
            code: r.code(),
            message: r.to_string(),
        },
        RdsError::Core(e) => core_error(e),
    }
}
