//! What the built-in service layers tell the others: the MySQL database of each app whose data
//! source is the stack's db-master layer, the memcached server, and the settings of the layer an
//! instance itself belongs to (HAProxy's health check and stats, MySQL's root password, memcached's
//! memory).
//!
//! Secrets reach only the instances that need them: the stats password only lb instances, the root
//! password only db-master instances; an app's database password goes to every instance (the
//! apps need it, as in the original) but never through the API.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use opsworks_model::InstanceStatus;
use opsworks_model::layer::LayerType;
use opsworks_model::resource::{App, Instance, Layer};

/// The port the built-in MySQL (MariaDB) server listens on.
pub const MYSQL_PORT: u16 = 3306;
/// The port the built-in memcached listens on.
pub const MEMCACHED_PORT: u16 = 11211;

/// The data source types served by the stack's db-master layer.
const OPSWORKS_MYSQL: [&str; 2] = ["OpsworksMysqlInstance", "AutoSelectOpsworksMysqlInstance"];

/// The stack's layer of `kind` (built-in types have at most one layer per stack).
pub fn layer_of_type<'a>(layers: &[&'a Layer], kind: LayerType) -> Option<&'a Layer> {
    layers.iter().copied().find(|l| l.r#type == kind)
}

/// The first online instance (by hostname, so every instance agrees) of `layer`.
fn first_online<'a>(instances: &[&'a Instance], layer: &Layer) -> Option<&'a Instance> {
    instances
        .iter()
        .copied()
        .filter(|i| i.status == InstanceStatus::Online && i.private_ip.is_some())
        .filter(|i| i.in_layer(&layer.layer_id))
        .min_by_key(|i| i.hostname.as_str())
}

/// A MySQL identifier from an app's short name: letters, digits and `_` (a `-` would need quoting
/// everywhere), at most 32 characters (MariaDB allows 80 for users, 64 for databases).
fn mysql_ident(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(32)
        .collect();
    if out.is_empty() {
        out.push_str("app");
    }
    out
}

/// The password of an app's database user: derived from the layer's root password and the app's
/// ID, so nothing more has to be stored, every run computes the same one, and changing the root
/// password rotates the app passwords with it.
fn app_password(root_password: &str, app_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"opsworks-app-database\0");
    h.update(root_password.as_bytes());
    h.update(b"\0");
    h.update(app_id.as_bytes());
    hex::encode(h.finalize())[..32].to_string()
}

/// The database an app gets on the db-master layer, without the host: `None` when the app has no
/// OpsWorks MySQL data source, or the stack no db-master layer with a root password.
pub fn app_database(layers: &[&Layer], app: &App) -> Option<Value> {
    let source = app.data_sources.iter().find(|d| {
        d.r#type
            .as_deref()
            .is_some_and(|t| OPSWORKS_MYSQL.contains(&t))
    })?;
    let db_layer = layer_of_type(layers, LayerType::DbMaster)?;
    let root = db_layer.attribute("MysqlRootPassword")?;
    let database = match source.database_name.as_deref().unwrap_or_default() {
        "" => mysql_ident(&app.shortname),
        name => mysql_ident(name),
    };
    Some(json!({
        "adapter": "mysql",
        "database": database,
        "username": mysql_ident(&app.shortname),
        "password": app_password(root, &app.app_id),
        "port": MYSQL_PORT,
        "reconnect": true,
        "data_source_provider": "mysql",
    }))
}

/// The connection data an app's code uses: its database with the db-master's address (only once a
/// db-master instance is online; the Configure that follows its arrival fills it in).
pub fn app_connection(layers: &[&Layer], instances: &[&Instance], app: &App) -> Option<Value> {
    let mut db = app_database(layers, app)?;
    let host = first_online(instances, layer_of_type(layers, LayerType::DbMaster)?)?;
    db["host"] = json!(host.private_ip);
    db["hostname"] = json!(host.hostname);
    Some(db)
}

/// The memcached server apps use: the first online instance of the memcached layer.
pub fn memcached(layers: &[&Layer], instances: &[&Instance]) -> Option<Value> {
    let layer = layer_of_type(layers, LayerType::Memcached)?;
    let host = first_online(instances, layer)?;
    Some(json!({"host": host.private_ip, "hostname": host.hostname, "port": MEMCACHED_PORT}))
}

/// The attributes of the built-in layers `my_layers` (the instance's own): `haproxy`, `mysql`,
/// `memcached`, as the layers' recipes read them.
pub fn layer_settings(
    layers: &[&Layer],
    apps: &[&App],
    my_layers: &[String],
) -> Map<String, Value> {
    let mut out = Map::new();
    for layer in layers.iter().filter(|l| my_layers.contains(&l.layer_id)) {
        let a = |k: &str| layer.attribute(k);
        match layer.r#type {
            LayerType::Lb => {
                out.insert(
                    "haproxy".into(),
                    json!({
                        "health_check_url": a("HaproxyHealthCheckUrl").unwrap_or("/"),
                        "health_check_method": a("HaproxyHealthCheckMethod").unwrap_or("OPTIONS"),
                        "enable_stats": a("EnableHaproxyStats") == Some("true"),
                        "stats_url": a("HaproxyStatsUrl").unwrap_or("/haproxy?stats"),
                        "stats_user": a("HaproxyStatsUser").unwrap_or("opsworks"),
                        "stats_password": a("HaproxyStatsPassword"),
                        "app_server_layer_types": APP_SERVER_TYPES,
                    }),
                );
            }
            LayerType::DbMaster => {
                let databases: Vec<Value> = apps
                    .iter()
                    .filter_map(|app| {
                        let mut db = app_database(layers, app)?;
                        db["application"] = json!(app.shortname);
                        Some(db)
                    })
                    .collect();
                out.insert(
                    "mysql".into(),
                    json!({
                        "server_root_password": a("MysqlRootPassword"),
                        "port": MYSQL_PORT,
                        "databases": databases,
                    }),
                );
            }
            LayerType::Memcached => {
                let memory: u64 = a("MemcachedMemory")
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(512);
                out.insert(
                    "memcached".into(),
                    json!({"memory": memory, "port": MEMCACHED_PORT}),
                );
            }
            _ => {}
        }
    }
    out
}

/// The layer types whose instances serve apps behind the lb layer.
pub const APP_SERVER_TYPES: [&str; 5] = ["nodejs-app", "php-app", "web", "rails-app", "java-app"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn layers() -> Vec<Layer> {
        vec![
            fixtures::layer(
                json!({"LayerId": "db", "Type": "db-master", "Shortname": "db-master",
                "Attributes": {"MysqlRootPassword": "rootpw"}}),
            ),
            fixtures::layer(
                json!({"LayerId": "mc", "Type": "memcached", "Shortname": "memcached",
                "Attributes": {"MemcachedMemory": "64"}}),
            ),
            fixtures::layer(json!({"LayerId": "lb", "Type": "lb", "Shortname": "lb",
                "Attributes": {"EnableHaproxyStats": "true", "HaproxyStatsPassword": "statspw",
                    "HaproxyHealthCheckMethod": "GET"}})),
        ]
    }

    fn app() -> App {
        fixtures::app(json!({"AppId": "a1", "Shortname": "my-shop",
            "DataSources": [{"Type": "OpsworksMysqlInstance", "Arn": "x", "DatabaseName": ""}]}))
    }

    fn refs<T>(v: &[T]) -> Vec<&T> {
        v.iter().collect()
    }

    #[test]
    fn an_app_with_a_mysql_source_gets_a_database_of_its_own() {
        let ls = layers();
        let ls = refs(&ls);
        let db = app_database(&ls, &app()).unwrap();
        assert_eq!(db["database"], "my_shop");
        assert_eq!(db["username"], "my_shop");
        let pw = db["password"].as_str().unwrap();
        assert_eq!(pw.len(), 32);
        assert!(!pw.contains("rootpw"));
        // Stable across runs, different per app.
        assert_eq!(app_database(&ls, &app()).unwrap()["password"], pw);
        let other = fixtures::app(json!({"AppId": "a2", "Shortname": "x",
            "DataSources": [{"Type": "AutoSelectOpsworksMysqlInstance"}]}));
        assert_ne!(app_database(&ls, &other).unwrap()["password"], pw);
        // No source, or an RDS one: nothing.
        assert!(app_database(&ls, &fixtures::app(json!({"AppId": "a3"}))).is_none());
        let rds = fixtures::app(
            json!({"AppId": "a4", "DataSources": [{"Type": "RdsDbInstance", "Arn": "arn"}]}),
        );
        assert!(app_database(&ls, &rds).is_none());
    }

    #[test]
    fn the_host_is_the_first_online_db_master_instance() {
        let ls = layers();
        let mut instances = vec![
            fixtures::instance(
                json!({"Hostname": "db2", "LayerIds": ["db"], "Status": "online", "PrivateIp": "10.0.0.9"}),
            ),
            fixtures::instance(
                json!({"Hostname": "db1", "LayerIds": ["db"], "Status": "booting", "PrivateIp": "10.0.0.8"}),
            ),
        ];
        let c = app_connection(&refs(&ls), &refs(&instances), &app()).unwrap();
        assert_eq!(c["host"], "10.0.0.9");
        instances[0].status = InstanceStatus::Stopped;
        assert!(app_connection(&refs(&ls), &refs(&instances), &app()).is_none());
    }

    #[test]
    fn secrets_reach_only_their_own_layer() {
        let ls = layers();
        let ls = refs(&ls);
        let a = app();
        let all = layer_settings(&ls, &[&a], &["lb".into()]);
        assert_eq!(all["haproxy"]["stats_password"], "statspw");
        assert_eq!(all["haproxy"]["health_check_method"], "GET");
        assert!(all.get("mysql").is_none());
        let db = layer_settings(&ls, &[&a], &["db".into()]);
        assert_eq!(db["mysql"]["server_root_password"], "rootpw");
        assert_eq!(db["mysql"]["databases"][0]["application"], "my-shop");
        assert!(db.get("haproxy").is_none());
        let mc = layer_settings(&ls, &[], &["mc".into()]);
        assert_eq!(mc["memcached"]["memory"], 64);
    }
}
