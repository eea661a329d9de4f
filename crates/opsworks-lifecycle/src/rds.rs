//! What a stack's registered RDS databases tell its instances, in the original's shapes: Chef
//! 11's `node["opsworks"]["stack"]["rds_instances"]` and `node["deploy"][app]["database"]` of
//! the apps whose data source is one, and Chef 12's `aws_opsworks_rds_db_instance` data bag.
//!
//! A registration whose database is gone from the catalog (`MissingOnRds`) or has no address
//! yet tells nothing: an app whose data source it is gets no database rather than a dead one.
//! The passwords go to every instance of the stack, as the original's did (the apps need them).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use opsworks_model::rds::Engine;
use opsworks_model::resource::{App, DbInstance, RdsDbInstance};

/// A database registered with the stack, with its catalog entry when it has one.
#[derive(Debug, Clone, Copy)]
pub struct RdsDatabase<'a> {
    /// The registration (credentials).
    pub registration: &'a RdsDbInstance,
    /// The catalog entry (address, engine), `None` when the database is gone.
    pub instance: Option<&'a DbInstance>,
}

impl<'a> RdsDatabase<'a> {
    /// The catalog entry and its address, when the database can be reached.
    fn reachable(&self) -> Option<(&'a DbInstance, &'a str)> {
        let db = self.instance?;
        Some((db, db.address.as_deref()?))
    }
}

/// `node["opsworks"]["stack"]["rds_instances"]`: one entry per reachable database.
pub fn rds_instances(databases: &[RdsDatabase<'_>]) -> Vec<Value> {
    databases
        .iter()
        .filter_map(|d| {
            let (db, address) = d.reachable()?;
            let r = d.registration;
            Some(json!({
                "address": address,
                "port": db.port,
                "arn": r.rds_db_instance_arn,
                "rds_db_instance_arn": r.rds_db_instance_arn,
                "db_instance_identifier": db.db_instance_identifier,
                "db_user": r.db_user,
                "db_password": r.db_password,
                "engine": db.engine,
                "engine_version": db.engine_version,
                "region": r.region,
                "db_name": db.db_name,
                "db_instance_class": db.db_instance_class,
                "allocated_storage": db.allocated_storage,
                "db_instance_status": db.status,
                "instance_create_time": db.instance_create_time,
                "multi_az": false,
                "publicly_accessible": db.publicly_accessible,
                "backup_retention_period": db.backup_retention_period,
                "availability_zone": db.availability_zone,
            }))
        })
        .collect()
}

/// The `aws_opsworks_rds_db_instance` data bag: one item per reachable database, keyed by its
/// identifier.
pub fn data_bag(databases: &[RdsDatabase<'_>]) -> BTreeMap<String, Value> {
    databases
        .iter()
        .filter_map(|d| {
            let (db, address) = d.reachable()?;
            let r = d.registration;
            Some((
                db.db_instance_identifier.clone(),
                json!({
                    "id": db.db_instance_identifier,
                    "address": address,
                    "port": db.port,
                    "db_instance_identifier": db.db_instance_identifier,
                    "db_user": r.db_user,
                    "db_password": r.db_password,
                    "engine": db.engine,
                    "rds_db_instance_arn": r.rds_db_instance_arn,
                    "region": r.region,
                }),
            ))
        })
        .collect()
}

/// The connection data of an app whose data source is a registered database
/// (`node["deploy"][app]["database"]`): `None` when its source is not RDS, or the database is
/// not registered with the stack or cannot be reached.
pub fn app_database(databases: &[RdsDatabase<'_>], app: &App) -> Option<Value> {
    let source = app
        .data_sources
        .iter()
        .find(|s| s.r#type.as_deref() == Some("RdsDbInstance"))?;
    let arn = source.arn.as_deref()?;
    let d = databases
        .iter()
        .find(|d| d.registration.rds_db_instance_arn == arn)?;
    let (db, address) = d.reachable()?;
    let database = source
        .database_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(db.db_name.as_deref());
    let adapter = Engine::parse(&db.engine)
        .map(Engine::adapter)
        .unwrap_or("mysql");
    Some(json!({
        "adapter": adapter,
        "host": address,
        "port": db.port,
        "database": database,
        "username": d.registration.db_user,
        "password": d.registration.db_password,
        "reconnect": true,
        "data_source_provider": "rds",
    }))
}

/// An app's data sources as the Chef 12 app bag has them (`[{type, arn, database_name}]`).
pub fn data_sources(app: &App) -> Value {
    Value::Array(
        app.data_sources
            .iter()
            .map(|s| json!({"type": s.r#type, "arn": s.arn, "database_name": s.database_name}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const ARN: &str = "arn:aws:rds:us-east-1:123456789012:db:shopdb";

    fn registration() -> RdsDbInstance {
        serde_json::from_value(json!({
            "RdsDbInstanceArn": ARN, "StackId": "s1", "DbInstanceIdentifier": "shopdb",
            "DbUser": "shop", "DbPassword": "s3cret-pw", "Region": "us-east-1",
            "RegisteredAt": "2026-01-01T00:00:00+00:00"}))
        .unwrap()
    }

    fn catalog(engine: &str, address: Option<&str>) -> DbInstance {
        serde_json::from_value(json!({
            "DbInstanceIdentifier": "shopdb", "DbInstanceArn": ARN, "DbiResourceId": "db-X",
            "Engine": engine, "EngineVersion": "15.18", "Port": 5432, "Address": address,
            "DbName": "shop", "Status": "available", "InstanceCreateTime": "2026-01-01T00:00:00+00:00",
            "_Origin": "managed"}))
        .unwrap()
    }

    fn app(database_name: &str) -> App {
        fixtures::app(json!({"AppId": "a1", "Shortname": "shop",
            "DataSources": [{"Type": "RdsDbInstance", "Arn": ARN, "DatabaseName": database_name}]}))
    }

    #[test]
    fn an_app_on_a_registered_database_gets_its_connection() {
        let r = registration();
        let db = catalog("postgres", Some("10.217.0.9"));
        let dbs = [RdsDatabase {
            registration: &r,
            instance: Some(&db),
        }];
        let c = app_database(&dbs, &app("orders")).unwrap();
        assert_eq!(
            c,
            json!({"adapter": "postgresql", "host": "10.217.0.9", "port": 5432,
                "database": "orders", "username": "shop", "password": "s3cret-pw",
                "reconnect": true, "data_source_provider": "rds"})
        );
        // An empty DatabaseName takes the database created with the instance.
        assert_eq!(app_database(&dbs, &app("")).unwrap()["database"], "shop");
        let listed = rds_instances(&dbs);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["address"], "10.217.0.9");
        assert_eq!(listed[0]["db_password"], "s3cret-pw");
        assert_eq!(listed[0]["engine"], "postgres");
        let bag = data_bag(&dbs);
        assert_eq!(bag["shopdb"]["rds_db_instance_arn"], ARN);
        assert_eq!(bag["shopdb"]["db_user"], "shop");
    }

    #[test]
    fn a_database_that_is_gone_or_not_registered_tells_nothing() {
        let r = registration();
        let gone = [RdsDatabase {
            registration: &r,
            instance: None,
        }];
        assert!(app_database(&gone, &app("x")).is_none());
        assert!(rds_instances(&gone).is_empty());
        assert!(data_bag(&gone).is_empty());
        let creating = catalog("mysql", None);
        let no_address = [RdsDatabase {
            registration: &r,
            instance: Some(&creating),
        }];
        assert!(app_database(&no_address, &app("x")).is_none());
        assert!(app_database(&[], &app("x")).is_none());
        let other = fixtures::app(json!({"AppId": "a2",
            "DataSources": [{"Type": "OpsworksMysqlInstance", "Arn": "x"}]}));
        let db = catalog("mysql", Some("10.0.0.1"));
        let dbs = [RdsDatabase {
            registration: &r,
            instance: Some(&db),
        }];
        assert!(app_database(&dbs, &other).is_none());
        assert_eq!(app_database(&dbs, &app("x")).unwrap()["adapter"], "mysql");
        assert_eq!(
            data_sources(&app("x")),
            json!([{"type": "RdsDbInstance", "arn": ARN, "database_name": "x"}])
        );
    }
}
