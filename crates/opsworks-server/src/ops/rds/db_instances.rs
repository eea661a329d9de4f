//! The DB instance operations and the `DBInstance` shape they answer with.
//!
//! What RDS takes but this server cannot do (Multi-AZ, encryption, managed secrets, clusters,
//! snapshots, other engines, changing a class) is refused naming the member, never ignored; what
//! changes nothing here (availability zone, storage type, backup retention) is recorded and
//! shown as given.

use serde_json::{Map, Value, json};

use opsworks_api::query::AwsError;
use opsworks_model::rds::{self as rules, Engine, STORAGE_TYPES};
use opsworks_model::resource::{DbInstance, DbTag};
use opsworks_store::Filter;

use super::{Ctx, RdsCall, core_error, rds_error, s};
use crate::core::rds::{self, Changes, NewDbInstance, status};

/// Members of CreateDBInstance this server serves (or records).
const CREATE_MEMBERS: &[&str] = &[
    "DBInstanceIdentifier",
    "DBInstanceClass",
    "Engine",
    "EngineVersion",
    "AllocatedStorage",
    "StorageType",
    "MasterUsername",
    "MasterUserPassword",
    "DBName",
    "Port",
    "Tags",
    "AvailabilityZone",
    "BackupRetentionPeriod",
    "DeletionProtection",
    "PubliclyAccessible",
    "AutoMinorVersionUpgrade",
    "VpcSecurityGroupIds",
    "PreferredBackupWindow",
    "PreferredMaintenanceWindow",
    "CopyTagsToSnapshot",
    "LicenseModel",
];

/// Members of ModifyDBInstance this server serves.
const MODIFY_MEMBERS: &[&str] = &[
    "DBInstanceIdentifier",
    "MasterUserPassword",
    "ApplyImmediately",
    "AllocatedStorage",
    "BackupRetentionPeriod",
    "DeletionProtection",
    "PubliclyAccessible",
    "AutoMinorVersionUpgrade",
];

/// Boolean members that are fine when false (what they would turn on is not served).
const OFF_ONLY: &[&str] = &[
    "MultiAZ",
    "StorageEncrypted",
    "ManageMasterUserPassword",
    "EnableIAMDatabaseAuthentication",
    "EnablePerformanceInsights",
    "EnableCustomerOwnedIp",
    "DedicatedLogVolume",
    "MultiTenant",
    "AllowMajorVersionUpgrade",
    "RotateMasterUserPassword",
];

fn invalid(code: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::Invalid {
        code,
        message: message.into(),
    }
}

/// Refuses any member outside `served` (and the off-only ones set to true).
fn only_served(input: &Value, operation: &str, served: &[&str]) -> Result<(), AwsError> {
    let Some(members) = input.as_object() else {
        return Ok(());
    };
    for (name, value) in members {
        if served.contains(&name.as_str()) {
            continue;
        }
        if OFF_ONLY.contains(&name.as_str()) && value == &Value::Bool(false) {
            continue;
        }
        let what = if OFF_ONLY.contains(&name.as_str()) {
            format!("{name}=true")
        } else {
            name.clone()
        };
        return Err(invalid(
            "InvalidParameterCombination",
            format!("{operation} on this server does not support {what}."),
        ));
    }
    Ok(())
}

fn i(input: &Value, key: &str) -> Option<i64> {
    input.get(key).and_then(Value::as_i64)
}

fn b(input: &Value, key: &str) -> Option<bool> {
    input.get(key).and_then(Value::as_bool)
}

fn rule(e: rules::RdsRuleError) -> AwsError {
    invalid(e.code(), e.to_string())
}

/// An identifier as given, or the identifier of an ARN (Describe takes either).
fn identifier_of(given: &str) -> Result<String, AwsError> {
    match given.strip_prefix("arn:") {
        Some(_) => rules::parse_db_arn(given)
            .map(|a| a.identifier.to_ascii_lowercase())
            .ok_or_else(|| {
                invalid(
                    "InvalidParameterValue",
                    format!("Invalid database identifier or ARN: {given}"),
                )
            }),
        None => rules::identifier(given).map_err(rule),
    }
}

/// CreateDBInstance.
pub async fn create_db_instance(cx: Ctx<'_>, input: &Value) -> RdsCall {
    only_served(input, "CreateDBInstance", CREATE_MEMBERS)?;
    let identifier =
        rules::identifier(s(input, "DBInstanceIdentifier").unwrap_or_default()).map_err(rule)?;
    let engine = Engine::parse(s(input, "Engine").unwrap_or_default()).map_err(rule)?;
    let class = s(input, "DBInstanceClass").unwrap_or_default().to_string();
    rules::instance_class(engine, &class).map_err(rule)?;
    let storage_type = s(input, "StorageType").unwrap_or("gp2").to_string();
    if !STORAGE_TYPES.contains(&storage_type.as_str()) {
        return Err(invalid(
            "InvalidParameterValue",
            format!("Invalid storage type: {storage_type}"),
        ));
    }
    let allocated_storage =
        rules::allocated_storage(engine, i(input, "AllocatedStorage"), &storage_type)
            .map_err(rule)?;
    let master_username =
        rules::master_username(engine, s(input, "MasterUsername")).map_err(rule)?;
    rules::master_password(engine, s(input, "MasterUserPassword")).map_err(rule)?;
    let db_name = s(input, "DBName").map(str::to_string);
    if let Some(name) = &db_name {
        rules::db_name(engine, name).map_err(rule)?;
    }
    let port = match i(input, "Port") {
        Some(p) => rules::port(p).map_err(rule)?,
        None => engine.default_port(),
    };
    let backup_retention_period = i(input, "BackupRetentionPeriod").unwrap_or(1);
    if !(0..=35).contains(&backup_retention_period) {
        return Err(invalid(
            "InvalidParameterValue",
            "The parameter BackupRetentionPeriod must be between 0 and 35.",
        ));
    }
    let new = NewDbInstance {
        identifier,
        engine,
        class,
        allocated_storage,
        storage_type,
        master_username,
        master_password: s(input, "MasterUserPassword")
            .unwrap_or_default()
            .to_string(),
        db_name,
        port,
        engine_version: s(input, "EngineVersion").map(str::to_string),
        availability_zone: s(input, "AvailabilityZone").map(str::to_string),
        backup_retention_period,
        deletion_protection: b(input, "DeletionProtection").unwrap_or(false),
        publicly_accessible: b(input, "PubliclyAccessible").unwrap_or(false),
        auto_minor_version_upgrade: b(input, "AutoMinorVersionUpgrade").unwrap_or(true),
        tags: tags(input),
    };
    let db = rds::create(cx.core, new).await.map_err(rds_error)?;
    Ok(json!({ "DBInstance": db_instance_shape(&db) }))
}

fn tags(input: &Value) -> Vec<DbTag> {
    input
        .get("Tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(DbTag {
                        key: t.get("Key")?.as_str()?.to_string(),
                        value: t.get("Value").and_then(Value::as_str).map(str::to_string),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// DescribeDBInstances: one by identifier (or ARN), or all matching `Filters`, a page of
/// `MaxRecords` (20 to 100) from `Marker` on, in identifier order.
pub async fn describe_db_instances(cx: Ctx<'_>, input: &Value) -> RdsCall {
    let max = match i(input, "MaxRecords") {
        None => 100,
        Some(n) if (20..=100).contains(&n) => n as usize,
        Some(n) => {
            return Err(invalid(
                "InvalidParameterValue",
                format!("Invalid value {n} for MaxRecords. Must be between 20 and 100"),
            ));
        }
    };
    let filters = filters(input)?;
    let mut dbs: Vec<DbInstance> = match s(input, "DBInstanceIdentifier") {
        Some(given) => {
            let id = identifier_of(given)?;
            vec![rds::find(cx.core, &id).await.map_err(rds_error)?]
        }
        None => cx
            .core
            .list::<DbInstance>(Filter::All)
            .await
            .map_err(core_error)?
            .iter()
            .map(|d| d.to_owned_value())
            .collect(),
    };
    dbs.retain(|db| filters.iter().all(|f| f.matches(db)));
    dbs.sort_by(|a, b| a.db_instance_identifier.cmp(&b.db_instance_identifier));
    let start = match s(input, "Marker") {
        None => 0,
        Some(m) => dbs
            .iter()
            .position(|d| d.db_instance_identifier.as_str() >= m)
            .unwrap_or(dbs.len()),
    };
    let end = (start + max).min(dbs.len());
    let mut out = Map::new();
    out.insert(
        "DBInstances".into(),
        Value::Array(dbs[start..end].iter().map(db_instance_shape).collect()),
    );
    if end < dbs.len() {
        out.insert(
            "Marker".into(),
            json!(dbs[end].db_instance_identifier.clone()),
        );
    }
    Ok(Value::Object(out))
}

/// A filter of DescribeDBInstances.
struct DbFilter {
    name: String,
    values: Vec<String>,
}

impl DbFilter {
    fn matches(&self, db: &DbInstance) -> bool {
        let v = |x: &str| self.values.iter().any(|want| want == x);
        match self.name.as_str() {
            "db-instance-id" => v(&db.db_instance_identifier) || v(&db.db_instance_arn),
            "dbi-resource-id" => v(&db.dbi_resource_id),
            "engine" => v(&db.engine),
            // No clusters, domains or RDS Custom here: nothing belongs to one.
            _ => false,
        }
    }
}

fn filters(input: &Value) -> Result<Vec<DbFilter>, AwsError> {
    let mut out = Vec::new();
    for f in input
        .get("Filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s(f, "Name").unwrap_or_default().to_string();
        if ![
            "db-instance-id",
            "dbi-resource-id",
            "engine",
            "db-cluster-id",
            "domain",
        ]
        .contains(&name.as_str())
        {
            return Err(invalid(
                "InvalidParameterValue",
                format!("Unrecognized filter name: {name}"),
            ));
        }
        let values = f
            .get("Values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        out.push(DbFilter { name, values });
    }
    Ok(out)
}

/// ModifyDBInstance: a new master password (applied before the call answers), deletion
/// protection, and what is recorded.
pub async fn modify_db_instance(cx: Ctx<'_>, input: &Value) -> RdsCall {
    only_served(input, "ModifyDBInstance", MODIFY_MEMBERS)?;
    let id = identifier_of(s(input, "DBInstanceIdentifier").unwrap_or_default())?;
    if let Some(n) = i(input, "BackupRetentionPeriod")
        && !(0..=35).contains(&n)
    {
        return Err(invalid(
            "InvalidParameterValue",
            "The parameter BackupRetentionPeriod must be between 0 and 35.",
        ));
    }
    let changes = Changes {
        master_password: s(input, "MasterUserPassword").map(str::to_string),
        allocated_storage: i(input, "AllocatedStorage"),
        backup_retention_period: i(input, "BackupRetentionPeriod"),
        deletion_protection: b(input, "DeletionProtection"),
        publicly_accessible: b(input, "PubliclyAccessible"),
        auto_minor_version_upgrade: b(input, "AutoMinorVersionUpgrade"),
    };
    let db = rds::modify(cx.core, &id, changes)
        .await
        .map_err(rds_error)?;
    Ok(json!({ "DBInstance": db_instance_shape(&db) }))
}

/// RebootDBInstance.
pub async fn reboot_db_instance(cx: Ctx<'_>, input: &Value) -> RdsCall {
    if b(input, "ForceFailover") == Some(true) {
        return Err(invalid(
            "InvalidParameterCombination",
            "ForceFailover needs a Multi-AZ DB instance; this server runs single-AZ ones only.",
        ));
    }
    let id = identifier_of(s(input, "DBInstanceIdentifier").unwrap_or_default())?;
    let db = rds::reboot(cx.core, &id).await.map_err(rds_error)?;
    Ok(json!({ "DBInstance": db_instance_shape(&db) }))
}

/// DeleteDBInstance: `SkipFinalSnapshot` is required (no snapshots are taken here).
pub async fn delete_db_instance(cx: Ctx<'_>, input: &Value) -> RdsCall {
    let id = identifier_of(s(input, "DBInstanceIdentifier").unwrap_or_default())?;
    if s(input, "FinalDBSnapshotIdentifier").is_some() {
        return Err(invalid(
            "InvalidParameterCombination",
            "Final snapshots are not supported by this server: delete with SkipFinalSnapshot.",
        ));
    }
    if b(input, "SkipFinalSnapshot") != Some(true) {
        return Err(invalid(
            "InvalidParameterCombination",
            "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.",
        ));
    }
    let db = rds::delete(cx.core, &id).await.map_err(rds_error)?;
    Ok(json!({ "DBInstance": db_instance_shape(&db) }))
}

/// Seconds since the epoch of a stored timestamp (the writer shows them as RDS does).
fn epoch(at: &str) -> Value {
    at.parse::<jiff::Timestamp>()
        .map(|t| json!(t.as_second()))
        .unwrap_or(Value::Null)
}

/// The `DBInstance` shape of a DB instance.
pub fn db_instance_shape(db: &DbInstance) -> Value {
    let family = match Engine::parse(&db.engine) {
        Ok(e) if e.is_mysql_family() => format!(
            "default.{}{}",
            db.engine,
            db.engine_version
                .as_deref()
                .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."))
                .unwrap_or_default()
        ),
        _ => format!(
            "default.postgres{}",
            db.engine_version
                .as_deref()
                .and_then(|v| v.split('.').next())
                .unwrap_or_default()
        ),
    };
    let mut v = json!({
        "DBInstanceIdentifier": db.db_instance_identifier,
        "DBInstanceArn": db.db_instance_arn,
        "DbiResourceId": db.dbi_resource_id,
        "Engine": db.engine,
        "DBInstanceStatus": db.status,
        "InstanceCreateTime": epoch(&db.instance_create_time),
        "BackupRetentionPeriod": db.backup_retention_period,
        "PreferredBackupWindow": "03:00-03:30",
        "PreferredMaintenanceWindow": "sun:05:00-sun:05:30",
        "DBSecurityGroups": [],
        "VpcSecurityGroups": [],
        "DBParameterGroups": [{"DBParameterGroupName": family, "ParameterApplyStatus": "in-sync"}],
        "PendingModifiedValues": {},
        "MultiAZ": false,
        "AutoMinorVersionUpgrade": db.auto_minor_version_upgrade,
        "ReadReplicaDBInstanceIdentifiers": [],
        "LicenseModel": if db.engine == "postgres" { "postgresql-license" } else { "general-public-license" },
        "OptionGroupMemberships": [],
        "PubliclyAccessible": db.publicly_accessible,
        "StorageEncrypted": false,
        "DbInstancePort": 0,
        "CopyTagsToSnapshot": false,
        "MonitoringInterval": 0,
        "IAMDatabaseAuthenticationEnabled": false,
        "PerformanceInsightsEnabled": false,
        "DeletionProtection": db.deletion_protection,
        "AssociatedRoles": [],
        "TagList": db.tags.iter().map(|t| {
            let mut tag = json!({"Key": t.key});
            if let Some(value) = &t.value {
                tag["Value"] = json!(value);
            }
            tag
        }).collect::<Vec<_>>(),
    });
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            v[key] = value;
        }
    };
    put("EngineVersion", json!(db.engine_version));
    put("DBInstanceClass", json!(db.db_instance_class));
    put("AllocatedStorage", json!(db.allocated_storage));
    put("StorageType", json!(db.storage_type));
    put("MasterUsername", json!(db.master_username));
    put("DBName", json!(db.db_name));
    put("AvailabilityZone", json!(db.availability_zone));
    // The endpoint shows once there is a server to reach (RDS shows it once available).
    if let Some(address) = &db.address
        && db.status != status::CREATING
    {
        put(
            "Endpoint",
            json!({"Address": address, "Port": db.port, "HostedZoneId": "Z2R2ITUGPM61AM"}),
        );
    }
    if let Some(message) = &db.status_message {
        put(
            "StatusInfos",
            json!([{"StatusType": "failure", "Normal": false, "Status": "error", "Message": message}]),
        );
    }
    v
}
