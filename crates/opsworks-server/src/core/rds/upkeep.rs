//! The machine work of RDS, in the background: creating a DB instance's machine and its master
//! user, rebooting it, removing it; and the upkeep pass, every few seconds, that keeps the
//! available ones running (a database whose process died is started again on its disk; one that
//! ran on while the control plane restarted is adopted as it is), finishes or undoes what a
//! restart interrupted, and removes RDS machines no DB instance owns.
//!
//! Each operation holds its machine's claim until it has recorded its outcome; the upkeep pass
//! leaves claimed machines alone.

use std::collections::HashSet;

use rand::distr::{Alphanumeric, SampleString};

use opsworks_model::Kind;
use opsworks_model::rds::{self as rules, Engine};
use opsworks_model::resource::DbInstance;
use opsworks_sandbox::Limits;
use opsworks_store::Filter;

use super::engine::{self, HostEngine, Master};
use super::{MACHINE_PREFIX, NewDbInstance, owner_token, status};
use crate::core::appliances::{ApplianceSpec, Appliances, Claim, Upkeep};
use crate::core::{Core, CoreResult};

/// How often the upkeep pass runs.
pub const PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// A new random secret (the administrative account's password).
pub fn new_secret() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// The appliance of a DB instance; `first_boot` carries the administrative password for the
/// boot that initialises the data dir (later boots get no secret).
fn spec(db: &DbInstance, host: &HostEngine, first_boot: Option<&str>) -> Option<ApplianceSpec> {
    let engine = Engine::parse(&db.engine).ok()?;
    let limits = db
        .db_instance_class
        .as_deref()
        .and_then(|c| rules::instance_class(engine, c).ok())
        .map(|size| Limits::new(size.vcpus, size.memory_mib));
    Some(ApplianceSpec {
        id: db.machine_id(),
        hostname: db.db_instance_identifier.clone(),
        main: engine::main_process(),
        files: engine::files(engine, host, db.port, first_boot),
        limits,
        port: db.port,
    })
}

/// Records a DB instance's new state, if it still exists.
async fn record(core: &Core, identifier: &str, change: impl FnOnce(&mut DbInstance)) {
    let result = async {
        let mut w = core.write().await?;
        if let Some(mut db) = w.find::<DbInstance>(identifier).await? {
            change(&mut db);
            w.put(&db).await?;
            w.commit().await?;
        }
        CoreResult::Ok(())
    };
    if let Err(e) = result.await {
        tracing::error!(
            db_instance = identifier,
            "recording a DB instance's state: {e}"
        );
    }
}

async fn mark_failed(core: &Core, identifier: &str, message: String) {
    tracing::warn!(db_instance = identifier, "{message}");
    record(core, identifier, |db| {
        db.status = status::FAILED.into();
        db.status_message = Some(message);
    })
    .await;
}

async fn mark_available(core: &Core, identifier: &str, address: String, version: Option<String>) {
    record(core, identifier, |db| {
        db.status = status::AVAILABLE.into();
        db.status_message = None;
        db.address = Some(address);
        if version.is_some() {
            db.engine_version = version;
        }
    })
    .await;
}

/// Makes the machine, then the master user and database, then removes the first boot's
/// secrets; `available` when all went, `failed` (and no machine) when one step did not.
pub(super) fn spawn_create(
    core: &Core,
    appliances: Appliances,
    db: DbInstance,
    new: NewDbInstance,
    limits: Limits,
    claim: Claim,
) {
    let c = core.clone();
    core.spawn(async move {
        let _claim = claim;
        let id = db.db_instance_identifier.clone();
        match create_machine(&appliances, &db, &new, limits).await {
            Ok((address, version)) => {
                tracing::info!(db_instance = id, %address, "DB instance available");
                mark_available(&c, &id, address, Some(version)).await;
            }
            Err(reason) => {
                mark_failed(
                    &c,
                    &id,
                    format!("The DB instance could not be created: {reason}"),
                )
                .await
            }
        }
    });
}

async fn create_machine(
    appliances: &Appliances,
    db: &DbInstance,
    new: &NewDbInstance,
    limits: Limits,
) -> Result<(String, String), String> {
    let host = engine::host_engine(new.engine)?;
    let admin = db.admin_password.as_deref().unwrap_or_default();
    let mut spec = spec(db, host, Some(admin)).ok_or("unknown engine")?;
    spec.limits = Some(limits);
    let ip = appliances.create(&spec).await.map_err(|e| e.to_string())?;
    let address = ip.to_string();
    let master = Master {
        user: &new.master_username,
        password: &new.master_password,
        db_name: new.db_name.as_deref(),
    };
    let version = match engine::bootstrap(new.engine, &address, db.port, admin, &master).await {
        Ok(v) => v,
        Err(e) => {
            if let Err(d) = appliances.destroy(&spec.id).await {
                tracing::error!(machine = spec.id, "removing a half-made database: {d}");
            }
            return Err(e.to_string());
        }
    };
    forget_first_boot_secrets(appliances, &spec.id).await;
    Ok((address, version))
}

/// Removes the first boot's secret files from the machine (the database read them already).
async fn forget_first_boot_secrets(appliances: &Appliances, machine: &str) {
    let mut argv = vec!["rm".to_string(), "-f".to_string()];
    argv.extend(engine::INIT_FILES.iter().map(|f| f.to_string()));
    match appliances.exec(machine, &argv).await {
        Ok(out) if out.exit_code == 0 => {}
        Ok(out) => tracing::warn!(
            machine,
            "removing the first boot's files exited {}",
            out.exit_code
        ),
        Err(e) => tracing::warn!(machine, "removing the first boot's files: {e}"),
    }
}

/// Reboots the machine on its disk; `available` when it answers again, `failed` (stopped, disk
/// kept: RebootDBInstance may try again) when it does not.
pub(super) fn spawn_reboot(core: &Core, appliances: Appliances, db: DbInstance, claim: Claim) {
    let c = core.clone();
    core.spawn(async move {
        let _claim = claim;
        let id = db.db_instance_identifier.clone();
        let outcome = async {
            let engine = Engine::parse(&db.engine).map_err(|e| e.to_string())?;
            let host = engine::host_engine(engine)?;
            let spec = spec(&db, host, None).ok_or("unknown engine")?;
            appliances.reboot(&spec).await.map_err(|e| e.to_string())
        };
        match outcome.await {
            Ok(ip) => mark_available(&c, &id, ip.to_string(), None).await,
            Err(reason) => {
                mark_failed(
                    &c,
                    &id,
                    format!("The DB instance did not come back from a reboot: {reason}"),
                )
                .await
            }
        }
    });
}

/// Removes the machine and its disk, then the record.
pub(super) fn spawn_delete(core: &Core, appliances: Appliances, db: DbInstance, claim: Claim) {
    let c = core.clone();
    core.spawn(async move {
        let _claim = claim;
        remove(&c, &appliances, &db).await;
    });
}

async fn remove(core: &Core, appliances: &Appliances, db: &DbInstance) {
    let id = db.db_instance_identifier.clone();
    if let Err(e) = appliances.destroy(&db.machine_id()).await {
        mark_failed(
            core,
            &id,
            format!("The DB instance could not be deleted: {e}"),
        )
        .await;
        return;
    }
    let result = async {
        let mut w = core.write().await?;
        w.delete(Kind::DbInstance, &id).await?;
        w.commit().await
    };
    match result.await {
        Ok(()) => tracing::info!(db_instance = id, "DB instance deleted"),
        Err(e) => tracing::error!(
            db_instance = id,
            "removing a deleted DB instance's record: {e}"
        ),
    }
}

/// One upkeep pass (see the module).
pub async fn pass(core: &Core) -> CoreResult<()> {
    let Some(appliances) = core.appliances() else {
        return Ok(());
    };
    let dbs: Vec<DbInstance> = core
        .list::<DbInstance>(Filter::All)
        .await?
        .iter()
        .map(|d| d.to_owned_value())
        .collect();
    let keep: HashSet<String> = dbs
        .iter()
        .filter(|d| d.is_managed())
        .map(DbInstance::machine_id)
        .collect();
    if let Err(e) = appliances.reap(MACHINE_PREFIX, &keep).await {
        tracing::warn!("removing RDS machines nothing owns: {e}");
    }
    let me = owner_token(core);
    for db in dbs
        .into_iter()
        .filter(|d| d.is_managed() && d.owner.as_deref() == Some(me.as_str()))
    {
        let machine = db.machine_id();
        if appliances.is_claimed(&machine) {
            continue;
        }
        look_after(core, appliances, db).await;
    }
    Ok(())
}

async fn look_after(core: &Core, appliances: &Appliances, db: DbInstance) {
    let id = db.db_instance_identifier.clone();
    let machine = db.machine_id();
    let host = match Engine::parse(&db.engine)
        .map_err(|e| e.to_string())
        .and_then(engine::host_engine)
    {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(db_instance = id, "{e}");
            return;
        }
    };
    let Some(spec) = spec(&db, host, None) else {
        return;
    };
    match db.status.as_str() {
        status::AVAILABLE => match appliances.keep_running(&spec).await {
            Ok(Upkeep::Running(ip)) | Ok(Upkeep::Restarted(ip)) => {
                let address = ip.to_string();
                if db.address.as_deref() != Some(address.as_str()) {
                    mark_available(core, &id, address, None).await;
                }
            }
            Ok(Upkeep::Gone) => {
                mark_failed(
                    core,
                    &id,
                    "The DB instance's machine and its disk are gone.".into(),
                )
                .await
            }
            Err(e) => tracing::warn!(db_instance = id, "keeping the database running: {e}"),
        },
        // Nothing in this process works on these (they are not claimed): a restart of the
        // control plane interrupted them.
        status::CREATING | status::REBOOTING | status::DELETING => {
            let Some(_claim) = appliances.claim(&machine) else {
                return;
            };
            match db.status.as_str() {
                status::CREATING => {
                    // The master password was never stored: the creation cannot be finished.
                    if let Err(e) = appliances.destroy(&machine).await {
                        tracing::warn!(machine, "removing an interrupted creation: {e}");
                    }
                    mark_failed(
                        core,
                        &id,
                        "The control plane restarted while the DB instance was being created; delete it and create it again.".into(),
                    )
                    .await;
                }
                status::REBOOTING => match appliances.keep_running(&spec).await {
                    Ok(Upkeep::Running(ip)) | Ok(Upkeep::Restarted(ip)) => {
                        mark_available(core, &id, ip.to_string(), None).await
                    }
                    Ok(Upkeep::Gone) => {
                        mark_failed(
                            core,
                            &id,
                            "The DB instance's machine and its disk are gone.".into(),
                        )
                        .await
                    }
                    Err(e) => {
                        mark_failed(
                            core,
                            &id,
                            format!("The DB instance did not come back from a reboot: {e}"),
                        )
                        .await
                    }
                },
                _ => remove(core, appliances, &db).await,
            }
        }
        _ => {}
    }
}
