//! STS on the server's own endpoint: `GetCallerIdentity`, which any valid key may call (AWS
//! never evaluates policies for it, so neither does this server).

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use opsworks_api::query::AwsError;

use super::Ctx;

/// Runs an STS operation: the handler table of the Query endpoint's `sts` service.
pub fn dispatch<'a>(
    cx: Ctx<'a>,
    operation: &'a str,
    _input: Value,
) -> BoxFuture<'a, Result<Value, AwsError>> {
    Box::pin(async move {
        match operation {
            "GetCallerIdentity" => Ok(get_caller_identity(cx)),
            other => Err(AwsError::UnsupportedOperation {
                message: format!("The operation {other} of STS is not supported by this server."),
            }),
        }
    })
}

/// GetCallerIdentity: the account, and the caller's user ID and ARN (the account ID and the
/// root's ARN for the root).
fn get_caller_identity(cx: Ctx<'_>) -> Value {
    let account = cx.core.account_id();
    match &cx.principal.user {
        Some(u) => json!({"UserId": u.user_id, "Account": account, "Arn": u.arn}),
        None => json!({
            "UserId": account,
            "Account": account,
            "Arn": format!("arn:aws:iam::{account}:root"),
        }),
    }
}
