//! What the Query services on the server's endpoint (IAM, RDS, EC2, ELB) do around every call:
//! authorize it for the caller (`<service>:<Operation>` on the ARN it acts on; the root may do
//! anything) and, when it may change something, write it to the audit log; and a core failure in
//! the terms they share. Each service says how it finds the ARN and in what terms it refuses; the
//! rest is here, once.

use std::future::Future;

use serde_json::{Map, Value, json};

use opsworks_api::query::AwsError;
use opsworks_policy::Grants;
use opsworks_store::StoreError;

use super::Ctx;
use crate::core::{CoreError, audit};

/// One call of a Query service.
pub struct Call<'a> {
    /// The service's prefix in policies and the audit log (`iam`, `rds`, `ec2`,
    /// `elasticloadbalancing`).
    pub service: &'static str,
    /// The operation.
    pub operation: &'a str,
    /// The ARN it acts on, as the authorizer evaluates it (`*` for creations and listings).
    pub target: &'a str,
    /// The service's refusal, from the authorizer's reason (`AccessDenied`, EC2's
    /// `UnauthorizedOperation`).
    pub denied: fn(String) -> AwsError,
}

/// Authorizes `call`, runs `work` when allowed, and audits a call that may change something;
/// `audited` names what the audit record is about, from the call's outcome (a create's new ID
/// when the input named none), or `None` for the call's target.
pub async fn run<F>(
    cx: Ctx<'_>,
    call: Call<'_>,
    work: F,
    audited: impl FnOnce(&Result<Value, AwsError>) -> Option<String>,
) -> Result<Value, AwsError>
where
    F: Future<Output = Result<Value, AwsError>>,
{
    let result = match authorize(cx, &call) {
        Ok(()) => work.await,
        Err(e) => Err(e),
    };
    if audit::is_mutating(call.operation) {
        let target = audited(&result).or_else(|| Some(call.target.to_string()));
        record(cx, &call, target.as_deref(), &result).await;
    }
    result
}

/// A call refused before it could be authorized (what it names does not exist): audited like
/// any other when it may change something.
pub async fn refused(
    cx: Ctx<'_>,
    call: Call<'_>,
    error: AwsError,
    audited: impl FnOnce(&Result<Value, AwsError>) -> Option<String>,
) -> Result<Value, AwsError> {
    let result = Err(error);
    if audit::is_mutating(call.operation) {
        let target = audited(&result);
        record(cx, &call, target.as_deref(), &result).await;
    }
    result
}

/// Refuses the call unless the caller's policies allow it (the root always may).
pub fn authorize(cx: Ctx<'_>, call: &Call<'_>) -> Result<(), AwsError> {
    let Some(user) = &cx.principal.user else {
        return Ok(());
    };
    super::authz::decide(
        cx.principal,
        user,
        cx.core.account_id(),
        &format!("{}:{}", call.service, call.operation),
        call.target,
        Grants::default(),
    )
    .map_err(call.denied)
}

/// The usual refusal: `AccessDenied` with the authorizer's reason.
pub fn access_denied(reason: String) -> AwsError {
    AwsError::service("AccessDenied", reason)
}

/// Writes the call to the audit log: who, from where, on what, and how it ended.
pub async fn record(
    cx: Ctx<'_>,
    call: &Call<'_>,
    target: Option<&str>,
    result: &Result<Value, AwsError>,
) {
    let principal = cx
        .principal
        .arn(cx.core.account_id())
        .unwrap_or_else(|| cx.principal.name.clone());
    let mut detail = Map::new();
    if !cx.principal.access_key_id.is_empty() {
        detail.insert("AccessKeyId".into(), json!(cx.principal.access_key_id));
    }
    if let Err(e) = result {
        detail.insert("Message".into(), json!(e.message()));
    }
    audit::record(
        cx.core,
        audit::Call {
            principal: &principal,
            source_ip: super::authz::source(cx.principal),
            service: call.service,
            operation: call.operation,
            stack_id: None,
            target: target.filter(|t| *t != "*"),
            outcome: match result {
                Ok(_) => "Success",
                Err(e) => e.code(),
            },
            detail: Value::Object(detail),
        },
    )
    .await;
}

/// A core failure: a store that cannot take a write is `ServiceUnavailable` (clients retry it),
/// the rest an internal failure whose detail goes to the log only.
pub fn core_error(e: CoreError) -> AwsError {
    match e {
        CoreError::Store(StoreError::DiskFull(_)) => AwsError::service(
            "ServiceUnavailable",
            "The server's disk is full, so nothing was changed; retry once the operator has freed space",
        ),
        CoreError::Store(StoreError::Busy(_)) => AwsError::service(
            "ServiceUnavailable",
            "The server's database is busy; retry in a moment",
        ),
        other => AwsError::internal(other.to_string()),
    }
}
