//! OpsWorks' RDS operations: RegisterRdsDbInstance, DescribeRdsDbInstances,
//! UpdateRdsDbInstance, DeregisterRdsDbInstance.
//!
//! Unlike the original, registering and updating sign in to the database with the credentials
//! given, and refuse (saying which) credentials it does not take or a database that does not
//! answer. A database belongs to one stack. Every change reaches the stack's online instances as
//! a Configure: their `node["opsworks"]["stack"]["rds_instances"]`, the databases of the apps
//! that use it, the `aws_opsworks_rds_db_instance` data bag — so a new password reaches the apps
//! without a redeploy (the app layers restart an app whose environment changed).

use opsworks_api::{ApiError, shapes};
use opsworks_model::rds::{self as rules, Engine};
use opsworks_model::resource::{App, DbInstance, RdsDbInstance, Stack};
use opsworks_model::{Kind, Resource};
use opsworks_store::Filter;

use super::{Ctx, OpResult, Reply, keep_secret, required, wire};
use crate::core::rds::engine::{self, DbError, Login};
use crate::core::rds::{self, status};
use crate::core::{Core, lifecycle, now};

/// The catalog entry an ARN names, if the catalog has it (the ARN's region and account must be
/// this server's).
async fn catalog_entry(core: &Core, arn: &str) -> Result<Option<DbInstance>, ApiError> {
    let parsed = rules::parse_db_arn(arn).ok_or_else(|| {
        ApiError::Validation(format!(
            "RdsDbInstanceArn {arn} is not an RDS DB instance ARN (arn:aws:rds:REGION:ACCOUNT:db:IDENTIFIER)"
        ))
    })?;
    let found = core
        .find::<DbInstance>(&parsed.identifier.to_ascii_lowercase())
        .await?
        .map(|d| d.to_owned_value());
    Ok(found.filter(|d| d.db_instance_arn == arn))
}

/// Signs in to the database as `user`; the refusal names what went wrong, never the password.
async fn check_credentials(
    core: &Core,
    db: &DbInstance,
    user: &str,
    password: &str,
) -> Result<(), ApiError> {
    let id = &db.db_instance_identifier;
    if db.status != status::AVAILABLE {
        return Err(ApiError::Validation(format!(
            "RDS DB instance {id} is {}; register it once it is available",
            db.status
        )));
    }
    let engine = Engine::parse(&db.engine).map_err(|e| ApiError::Validation(e.to_string()))?;
    let Some(address) = db.address.as_deref() else {
        return Err(ApiError::Validation(format!(
            "RDS DB instance {id} has no address yet"
        )));
    };
    let login = Login {
        engine,
        address,
        port: db.port,
        user,
        password,
        database: db.db_name.as_deref(),
    };
    match engine::check_login(&login).await {
        Ok(version) => {
            if let Some(v) = version.filter(|_| !db.is_managed()) {
                rds::learn_version(core, id, &v)
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
            }
            Ok(())
        }
        Err(DbError::Denied { .. }) => Err(ApiError::Validation(format!(
            "RDS DB instance {id} refused DbUser {user}: wrong user name or password"
        ))),
        Err(DbError::Unreachable { reason, .. }) => Err(ApiError::Validation(format!(
            "RDS DB instance {id} does not answer at {address}:{}: {reason}",
            db.port
        ))),
        Err(DbError::Starting { .. }) => Err(ApiError::Validation(format!(
            "RDS DB instance {id} is still starting up; register it again in a moment"
        ))),
        Err(DbError::Statement(m)) => Err(ApiError::Validation(format!(
            "RDS DB instance {id} refused the sign-in of {user}: {m}"
        ))),
    }
}

/// RegisterRdsDbInstance: the database must be in the catalog, available, take the
/// credentials, and belong to no other stack.
pub async fn register_rds_db_instance(
    cx: Ctx<'_>,
    req: shapes::RegisterRdsDbInstanceRequest,
) -> OpResult {
    let stack = cx.core.get::<Stack>(&req.stack_id).await?;
    let arn = req.rds_db_instance_arn.clone();
    let user = required(&Some(req.db_user.clone()), "DbUser")?.to_string();
    let password = required(&Some(req.db_password.clone()), "DbPassword")?.to_string();
    let db = catalog_entry(cx.core, &arn).await?.ok_or_else(|| {
        ApiError::ResourceNotFound(format!("Unable to find RDS DB instance with ARN {arn}"))
    })?;
    check_credentials(cx.core, &db, &user, &password).await?;
    let mut w = cx.core.write().await?;
    if let Some(existing) = w.find::<RdsDbInstance>(&arn).await? {
        return Err(ApiError::Validation(
            if existing.stack_id == stack.stack_id {
                format!("RDS DB instance {arn} is already registered with this stack")
            } else {
                format!(
                    "RDS DB instance {arn} is registered with stack {}; a database belongs to one stack: deregister it there first",
                    existing.stack_id
                )
            },
        ));
    }
    let registration = RdsDbInstance {
        rds_db_instance_arn: arn,
        stack_id: stack.stack_id.clone(),
        db_instance_identifier: db.db_instance_identifier.clone(),
        db_user: user,
        db_password: password,
        region: rules::parse_db_arn(&db.db_instance_arn)
            .map(|a| a.region.to_string())
            .unwrap_or_default(),
        address: db.address.clone(),
        engine: Some(db.engine.clone()),
        registered_at: now(),
    };
    w.put(&registration).await?;
    lifecycle::configure_stack(&mut w, &stack.stack_id).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DescribeRdsDbInstances: the stack's registered databases (all, or those named).
pub async fn describe_rds_db_instances(
    cx: Ctx<'_>,
    req: shapes::DescribeRdsDbInstancesRequest,
) -> OpResult {
    cx.core.get::<Stack>(&req.stack_id).await?;
    let registered = cx
        .core
        .list::<RdsDbInstance>(Filter::Stack(&req.stack_id))
        .await?;
    let chosen: Vec<&RdsDbInstance> = match &req.rds_db_instance_arns {
        Some(arns) => arns
            .iter()
            .map(|arn| {
                registered
                    .iter()
                    .find(|r| &r.rds_db_instance_arn == arn)
                    .map(|r| &**r)
                    .ok_or_else(|| ApiError::not_found("RDS DB instance", arn))
            })
            .collect::<Result<_, _>>()?,
        None => registered.iter().map(|r| &**r).collect(),
    };
    let mut out = Vec::with_capacity(chosen.len());
    for r in chosen {
        let db = catalog_entry(cx.core, &r.rds_db_instance_arn)
            .await
            .ok()
            .flatten();
        out.push(wire::rds_db_instance(r, db.as_ref()));
    }
    Reply::json(&shapes::DescribeRdsDbInstancesResult {
        rds_db_instances: Some(out),
    })
}

/// UpdateRdsDbInstance: new credentials, checked by signing in with them; the stack configures.
pub async fn update_rds_db_instance(
    cx: Ctx<'_>,
    req: shapes::UpdateRdsDbInstanceRequest,
) -> OpResult {
    let arn = req.rds_db_instance_arn.clone();
    let current = cx.core.get::<RdsDbInstance>(&arn).await?.to_owned_value();
    let user = match req.db_user.as_deref() {
        Some(u) if u.trim().is_empty() => {
            return Err(ApiError::Validation("DbUser must not be empty".into()));
        }
        Some(u) => u.to_string(),
        None => current.db_user.clone(),
    };
    let password = keep_secret(req.db_password.clone(), Some(&current.db_password))
        .unwrap_or_else(|| current.db_password.clone());
    if password.is_empty() {
        return Err(ApiError::Validation("DbPassword must not be empty".into()));
    }
    if user != current.db_user || password != current.db_password {
        let db = catalog_entry(cx.core, &arn).await?.ok_or_else(|| {
            ApiError::Validation(format!(
                "RDS DB instance {arn} is missing on RDS: its credentials cannot be checked; deregister it"
            ))
        })?;
        check_credentials(cx.core, &db, &user, &password).await?;
    }
    let mut w = cx.core.write().await?;
    let mut registration: RdsDbInstance = w.get(&arn).await?;
    registration.db_user = user;
    registration.db_password = password;
    let stack_id = registration.stack_id.clone();
    w.put(&registration).await?;
    lifecycle::configure_stack(&mut w, &stack_id).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DeregisterRdsDbInstance: the database keeps running; refused while an app of the stack uses
/// it as its data source.
pub async fn deregister_rds_db_instance(
    cx: Ctx<'_>,
    req: shapes::DeregisterRdsDbInstanceRequest,
) -> OpResult {
    let arn = req.rds_db_instance_arn;
    let mut w = cx.core.write().await?;
    let registration: RdsDbInstance = w.get(&arn).await?;
    let stack_id = registration.stack_id.clone();
    let users: Vec<String> = w
        .list::<App>(Filter::Stack(&stack_id))
        .await?
        .into_iter()
        .filter(|a| {
            a.data_sources
                .iter()
                .any(|d| d.arn.as_deref() == Some(arn.as_str()))
        })
        .map(|a| a.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::Validation(format!(
            "RDS DB instance {arn} is the data source of app(s) {}; change their data sources first",
            users.join(", ")
        )));
    }
    w.delete(Kind::RdsDbInstance, registration.id()).await?;
    lifecycle::configure_stack(&mut w, &stack_id).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// Checks an app's data sources against the stack's registrations: an `RdsDbInstance` source
/// must name a database registered with the app's own stack.
pub async fn check_data_sources(
    w: &mut crate::core::Write<'_>,
    stack_id: &str,
    sources: &[opsworks_model::resource::DataSource],
) -> Result<(), ApiError> {
    for source in sources {
        if source.r#type.as_deref() != Some("RdsDbInstance") {
            continue;
        }
        let arn = source.arn.as_deref().unwrap_or_default();
        if rules::parse_db_arn(arn).is_none() {
            return Err(ApiError::Validation(format!(
                "DataSources: {arn} is not an RDS DB instance ARN (arn:aws:rds:REGION:ACCOUNT:db:IDENTIFIER)"
            )));
        }
        match w.find::<RdsDbInstance>(arn).await? {
            Some(r) if r.stack_id == stack_id => {}
            Some(r) => {
                return Err(ApiError::Validation(format!(
                    "DataSources: RDS DB instance {arn} is registered with another stack ({}); register a database with this stack",
                    r.stack_id
                )));
            }
            None => {
                return Err(ApiError::Validation(format!(
                    "DataSources: RDS DB instance {arn} is not registered with this stack; register it first (RegisterRdsDbInstance)"
                )));
            }
        }
    }
    Ok(())
}

/// Deregisters every database of a stack being deleted (they keep running).
pub async fn forget_stack(w: &mut crate::core::Write<'_>, stack_id: &str) -> Result<(), ApiError> {
    for r in w.list::<RdsDbInstance>(Filter::Stack(stack_id)).await? {
        w.delete(Kind::RdsDbInstance, r.id()).await?;
    }
    Ok(())
}
