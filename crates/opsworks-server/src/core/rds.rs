//! RDS's DB instances, served by real databases on this host: each managed DB instance is one
//! appliance ([`crate::core::appliances`]) whose main process is MariaDB or PostgreSQL
//! ([`engine`]), its data on the machine's disk; an imported one is only an address the operator
//! vouched for (it answered when added).
//!
//! Status flows as RDS's does: `creating` → `available`; `rebooting` → `available`; `deleting`
//! → gone; `failed` when a step could not finish (the reason in `StatusInfos`, no machine left
//! behind). Machine work runs in the background ([`upkeep`]), claimed against the upkeep pass
//! so neither undoes the other; what a control-plane restart interrupted is finished or undone
//! by the first upkeep pass.

pub mod engine;
pub mod upkeep;

use opsworks_model::rds::{self as rules, Engine, RdsRuleError};
use opsworks_model::resource::{DbInstance, DbOrigin, DbTag};
use opsworks_model::{Kind, Resource};

use crate::core::appliances::Appliances;
use crate::core::{Core, CoreError, now};

/// Statuses.
pub mod status {
    /// Being made.
    pub const CREATING: &str = "creating";
    /// Serving.
    pub const AVAILABLE: &str = "available";
    /// Stopping and starting again.
    pub const REBOOTING: &str = "rebooting";
    /// Being removed.
    pub const DELETING: &str = "deleting";
    /// A step could not finish; the message says which.
    pub const FAILED: &str = "failed";
}

/// The family prefix of RDS machines.
pub const MACHINE_PREFIX: &str = crate::core::appliances::RDS_PREFIX;

/// Why an RDS call was refused, in RDS's terms.
#[derive(Debug, thiserror::Error)]
pub enum RdsError {
    /// No such DB instance.
    #[error("DBInstance {0} not found.")]
    NotFound(String),
    /// The identifier is taken.
    #[error("DB instance already exists")]
    AlreadyExists(String),
    /// The DB instance's status does not allow the call.
    #[error("{0}")]
    InvalidState(String),
    /// A value refused by RDS's rules.
    #[error(transparent)]
    Rule(#[from] RdsRuleError),
    /// The core failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// A result of this module.
pub type RdsResult<T> = Result<T, RdsError>;

fn combination(message: impl Into<String>) -> RdsError {
    RdsError::Rule(RdsRuleError::Combination(message.into()))
}

/// The appliances RDS runs on, or why there are none.
pub fn appliances(core: &Core) -> RdsResult<&Appliances> {
    core.appliances().ok_or_else(|| {
        combination(
            "This server runs no machines (it was started without local instances, or as a user other than root), so it cannot run databases; `opsworks rds import` adds a database that runs elsewhere.",
        )
    })
}

/// Which server's machines run a managed DB instance: this host's name and the data dir.
pub fn owner_token(core: &Core) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), core.data_dir().display())
}

/// Refuses machine work on a DB instance whose machine another server runs (several servers on
/// one database): that server's upkeep looks after it, and only it can reach the machine.
fn on_this_server(core: &Core, db: &DbInstance) -> RdsResult<()> {
    match db.owner.as_deref() {
        Some(owner) if db.is_managed() && owner != owner_token(core) => {
            Err(RdsError::InvalidState(format!(
                "DB instance {} runs on the machines of another server of this control plane ({owner}): send this call to that server.",
                db.db_instance_identifier
            )))
        }
        _ => Ok(()),
    }
}

/// A DB instance by identifier (any case).
pub async fn find(core: &Core, identifier: &str) -> RdsResult<DbInstance> {
    let id = identifier.to_ascii_lowercase();
    core.find::<DbInstance>(&id)
        .await?
        .map(|d| d.to_owned_value())
        .ok_or(RdsError::NotFound(identifier.to_string()))
}

/// What CreateDBInstance asks for, checked by [`rules`] already.
#[derive(Debug, Clone)]
pub struct NewDbInstance {
    /// Lower-case identifier.
    pub identifier: String,
    /// The engine.
    pub engine: Engine,
    /// The engine name as given (`mysql` and `mariadb` differ only in name).
    pub class: String,
    /// GiB.
    pub allocated_storage: i64,
    /// Storage type.
    pub storage_type: String,
    /// Master user.
    pub master_username: String,
    /// Master password (never stored).
    pub master_password: String,
    /// First database.
    pub db_name: Option<String>,
    /// Port.
    pub port: u16,
    /// Requested version, checked against the host's.
    pub engine_version: Option<String>,
    /// Recorded.
    pub availability_zone: Option<String>,
    /// Recorded.
    pub backup_retention_period: i64,
    /// Refuses deletion when set.
    pub deletion_protection: bool,
    /// Recorded.
    pub publicly_accessible: bool,
    /// Recorded.
    pub auto_minor_version_upgrade: bool,
    /// Tags.
    pub tags: Vec<DbTag>,
}

/// CreateDBInstance: records the DB instance as `creating` and makes its machine in the
/// background; answers the record.
pub async fn create(core: &Core, new: NewDbInstance) -> RdsResult<DbInstance> {
    let host = engine::host_engine(new.engine).map_err(combination)?;
    if let Some(wanted) = &new.engine_version {
        rules::engine_version(new.engine, wanted, &host.version)?;
    }
    let size = rules::instance_class(new.engine, &new.class)?;
    let appliances = appliances(core)?.clone();
    let resource_id = rules::new_resource_id();
    let db = DbInstance {
        db_instance_identifier: new.identifier.clone(),
        db_instance_arn: rules::db_arn(core.region(), core.account_id(), &new.identifier),
        dbi_resource_id: resource_id,
        engine: new.engine.as_str().to_string(),
        engine_version: Some(host.version.clone()),
        db_instance_class: Some(new.class.clone()),
        allocated_storage: Some(new.allocated_storage),
        storage_type: Some(new.storage_type.clone()),
        master_username: Some(new.master_username.clone()),
        db_name: new.db_name.clone(),
        port: new.port,
        address: None,
        status: status::CREATING.into(),
        status_message: None,
        instance_create_time: now(),
        availability_zone: new.availability_zone.clone(),
        backup_retention_period: new.backup_retention_period,
        deletion_protection: new.deletion_protection,
        publicly_accessible: new.publicly_accessible,
        auto_minor_version_upgrade: new.auto_minor_version_upgrade,
        tags: new.tags.clone(),
        origin: DbOrigin::Managed,
        admin_password: Some(upkeep::new_secret()),
        owner: Some(owner_token(core)),
    };
    // Claimed before it is recorded: the upkeep pass never takes a creation in flight for one
    // a restart interrupted.
    let claim = appliances
        .claim(&db.machine_id())
        .ok_or_else(|| RdsError::InvalidState("the new machine is busy".into()))?;
    let mut w = core.write().await?;
    if w.find::<DbInstance>(&db.db_instance_identifier)
        .await?
        .is_some()
    {
        return Err(RdsError::AlreadyExists(new.identifier));
    }
    w.put(&db).await?;
    w.commit().await?;
    let limits = opsworks_sandbox::Limits::new(size.vcpus, size.memory_mib);
    upkeep::spawn_create(core, appliances, db.clone(), new, limits, claim);
    Ok(db)
}

/// RebootDBInstance: `rebooting`, then the machine stops and boots again on its disk.
pub async fn reboot(core: &Core, identifier: &str) -> RdsResult<DbInstance> {
    let mut w = core.write().await?;
    let mut db = w
        .find::<DbInstance>(&identifier.to_ascii_lowercase())
        .await?
        .ok_or_else(|| RdsError::NotFound(identifier.to_string()))?;
    if !db.is_managed() {
        return Err(combination(format!(
            "DB instance {} was imported: it runs elsewhere and is rebooted there.",
            db.db_instance_identifier
        )));
    }
    on_this_server(core, &db)?;
    let appliances = appliances(core)?.clone();
    // Claimed before the new status is committed (see `create`).
    let claim = appliances.claim(&db.machine_id());
    let claim = match claim {
        Some(c) if [status::AVAILABLE, status::FAILED].contains(&db.status.as_str()) => c,
        _ => {
            return Err(RdsError::InvalidState(format!(
                "Instance {} is not currently in the available state.",
                db.db_instance_identifier
            )));
        }
    };
    db.status = status::REBOOTING.into();
    db.status_message = None;
    w.put(&db).await?;
    w.commit().await?;
    upkeep::spawn_reboot(core, appliances, db.clone(), claim);
    Ok(db)
}

/// DeleteDBInstance: `deleting`, then the machine and its disk go, then the record. An imported
/// DB instance leaves the catalog at once and keeps running where it runs.
pub async fn delete(core: &Core, identifier: &str) -> RdsResult<DbInstance> {
    let mut w = core.write().await?;
    let mut db = w
        .find::<DbInstance>(&identifier.to_ascii_lowercase())
        .await?
        .ok_or_else(|| RdsError::NotFound(identifier.to_string()))?;
    on_this_server(core, &db)?;
    // Claimed before the new status is committed (see `create`); an imported one has no machine.
    let appliances = match db.is_managed() {
        true => Some(appliances(core)?.clone()),
        false => None,
    };
    let claim = match &appliances {
        Some(a) => a.claim(&db.machine_id()),
        None => None,
    };
    if db.deletion_protection {
        return Err(combination(
            "Cannot delete protected DB Instance, please disable deletion protection and try again.",
        ));
    }
    match db.status.as_str() {
        status::AVAILABLE | status::FAILED if claim.is_some() || !db.is_managed() => {}
        status::DELETING => {
            return Err(RdsError::InvalidState(format!(
                "Instance {} is already being deleted.",
                db.db_instance_identifier
            )));
        }
        other => {
            return Err(RdsError::InvalidState(format!(
                "Instance {} is currently {other} - it cannot be deleted now.",
                db.db_instance_identifier
            )));
        }
    }
    db.status = status::DELETING.into();
    let (Some(appliances), Some(claim)) = (appliances, claim) else {
        w.delete(Kind::DbInstance, &db.db_instance_identifier)
            .await?;
        w.commit().await?;
        return Ok(db);
    };
    w.put(&db).await?;
    w.commit().await?;
    upkeep::spawn_delete(core, appliances, db.clone(), claim);
    Ok(db)
}

/// What ModifyDBInstance changes.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// A new master password, applied at once (as RDS applies it, whatever ApplyImmediately).
    pub master_password: Option<String>,
    /// Storage, grow only (recorded).
    pub allocated_storage: Option<i64>,
    /// Recorded.
    pub backup_retention_period: Option<i64>,
    /// Deletion protection.
    pub deletion_protection: Option<bool>,
    /// Recorded.
    pub publicly_accessible: Option<bool>,
    /// Recorded.
    pub auto_minor_version_upgrade: Option<bool>,
}

/// ModifyDBInstance. The password is changed in the database before the call answers, so the
/// new one works as soon as it does.
pub async fn modify(core: &Core, identifier: &str, changes: Changes) -> RdsResult<DbInstance> {
    let db = find(core, identifier).await?;
    if changes.master_password.is_some() {
        // Set in the database itself, through its machine.
        on_this_server(core, &db)?;
    }
    let engine = Engine::parse(&db.engine)?;
    if db.status != status::AVAILABLE {
        return Err(RdsError::InvalidState(format!(
            "Instance {} is not currently in the available state.",
            db.db_instance_identifier
        )));
    }
    if let Some(gib) = changes.allocated_storage {
        let storage_type = db.storage_type.as_deref().unwrap_or("gp2");
        rules::allocated_storage(engine, Some(gib), storage_type)?;
        if db.allocated_storage.is_some_and(|old| gib < old) {
            return Err(combination(format!(
                "Invalid storage size for engine name {engine} and storage type {storage_type}: {gib}. The allocated storage cannot be decreased."
            )));
        }
    }
    if let Some(pw) = &changes.master_password {
        rules::master_password(engine, Some(pw))?;
        if !db.is_managed() {
            return Err(combination(format!(
                "DB instance {} was imported: its passwords are changed where it runs.",
                db.db_instance_identifier
            )));
        }
        let (Some(address), Some(admin), Some(user)) = (
            db.address.as_deref(),
            db.admin_password.as_deref(),
            db.master_username.as_deref(),
        ) else {
            return Err(RdsError::InvalidState(format!(
                "Instance {} has no address yet.",
                db.db_instance_identifier
            )));
        };
        engine::set_password(engine, address, db.port, admin, user, pw)
            .await
            .map_err(|e| {
                RdsError::InvalidState(format!(
                    "The master password of {} could not be changed: {e}",
                    db.db_instance_identifier
                ))
            })?;
    }
    let mut w = core.write().await?;
    let mut db: DbInstance = w
        .find(&db.db_instance_identifier)
        .await?
        .ok_or_else(|| RdsError::NotFound(identifier.to_string()))?;
    if let Some(v) = changes.allocated_storage {
        db.allocated_storage = Some(v);
    }
    if let Some(v) = changes.backup_retention_period {
        db.backup_retention_period = v;
    }
    if let Some(v) = changes.deletion_protection {
        db.deletion_protection = v;
    }
    if let Some(v) = changes.publicly_accessible {
        db.publicly_accessible = v;
    }
    if let Some(v) = changes.auto_minor_version_upgrade {
        db.auto_minor_version_upgrade = v;
    }
    w.put(&db).await?;
    w.commit().await?;
    Ok(db)
}

/// What `opsworks rds import` adds.
#[derive(Debug, Clone)]
pub struct Import {
    /// Lower-case identifier.
    pub identifier: String,
    /// Engine.
    pub engine: Engine,
    /// Host name or address.
    pub address: String,
    /// Port.
    pub port: u16,
}

/// Adds a database that runs elsewhere to the catalog, once something answers at its address
/// (a catalog entry never names a server that is not there).
pub async fn import(core: &Core, new: Import) -> RdsResult<DbInstance> {
    let target = format!("{}:{}", new.address, new.port);
    let answered = tokio::time::timeout(
        engine::CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((new.address.as_str(), new.port)),
    )
    .await;
    match answered {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(combination(format!(
                "Nothing answers at {target}: {e}. Import a database that runs."
            )));
        }
        Err(_) => {
            return Err(combination(format!(
                "Nothing answered at {target} within {} s. Import a database that runs.",
                engine::CONNECT_TIMEOUT.as_secs()
            )));
        }
    }
    let db = DbInstance {
        db_instance_identifier: new.identifier.clone(),
        db_instance_arn: rules::db_arn(core.region(), core.account_id(), &new.identifier),
        dbi_resource_id: rules::new_resource_id(),
        engine: new.engine.as_str().to_string(),
        engine_version: None,
        db_instance_class: None,
        allocated_storage: None,
        storage_type: None,
        master_username: None,
        db_name: None,
        port: new.port,
        address: Some(new.address.clone()),
        status: status::AVAILABLE.into(),
        status_message: None,
        instance_create_time: now(),
        availability_zone: None,
        backup_retention_period: 0,
        deletion_protection: false,
        publicly_accessible: false,
        auto_minor_version_upgrade: false,
        tags: Vec::new(),
        origin: DbOrigin::Imported,
        admin_password: None,
        owner: None,
    };
    let mut w = core.write().await?;
    if w.find::<DbInstance>(db.id()).await?.is_some() {
        return Err(RdsError::AlreadyExists(new.identifier));
    }
    w.put(&db).await?;
    w.commit().await?;
    Ok(db)
}

/// Records what a connection learnt of an imported database (its version), if it changed.
pub async fn learn_version(core: &Core, identifier: &str, version: &str) -> RdsResult<()> {
    let mut w = core.write().await?;
    if let Some(mut db) = w.find::<DbInstance>(identifier).await?
        && db.engine_version.as_deref() != Some(version)
    {
        db.engine_version = Some(version.to_string());
        w.put(&db).await?;
        w.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::open;

    /// A DB instance whose machine another server of the control plane runs.
    fn elsewhere(identifier: &str) -> DbInstance {
        DbInstance {
            db_instance_identifier: identifier.into(),
            db_instance_arn: format!("arn:aws:rds:us-east-1:123456789012:db:{identifier}"),
            dbi_resource_id: "db-ELSEWHERE".into(),
            engine: "mysql".into(),
            engine_version: None,
            db_instance_class: Some("db.t3.micro".into()),
            allocated_storage: Some(20),
            storage_type: Some("gp2".into()),
            master_username: Some("admin".into()),
            db_name: None,
            port: 3306,
            address: Some("10.217.0.9".into()),
            status: status::AVAILABLE.into(),
            status_message: None,
            instance_create_time: "2026-12-07T00:00:00Z".into(),
            availability_zone: None,
            backup_retention_period: 1,
            deletion_protection: false,
            publicly_accessible: false,
            auto_minor_version_upgrade: true,
            tags: Vec::new(),
            origin: DbOrigin::Managed,
            admin_password: None,
            owner: Some("another-host:/var/lib/opsworks".into()),
        }
    }

    #[tokio::test]
    async fn machine_work_on_another_servers_database_is_refused_clearly() {
        let (_dir, core) = open().await;
        let mut w = core.write().await.unwrap();
        w.put(&elsewhere("orders")).await.unwrap();
        w.commit().await.unwrap();
        let refused = |r: RdsResult<DbInstance>| match r {
            Err(RdsError::InvalidState(m)) => assert!(m.contains("another server"), "{m}"),
            other => panic!("not refused: {other:?}"),
        };
        refused(reboot(&core, "orders").await);
        refused(delete(&core, "orders").await);
        let password = Changes {
            master_password: Some("a new password".into()),
            ..Changes::default()
        };
        refused(modify(&core, "orders", password).await);
        // Nothing changed, and what is only recorded may change through any server.
        assert_eq!(
            find(&core, "orders").await.unwrap().status,
            status::AVAILABLE
        );
        let recorded = Changes {
            deletion_protection: Some(true),
            ..Changes::default()
        };
        assert!(
            modify(&core, "orders", recorded)
                .await
                .unwrap()
                .deletion_protection
        );
    }
}
