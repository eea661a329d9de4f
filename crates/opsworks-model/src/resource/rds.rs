//! Databases: the RDS catalog's DB instances (made by CreateDBInstance on this host, or imported
//! by an operator from elsewhere) and their registrations with OpsWorks stacks
//! (RegisterRdsDbInstance).
//!
//! A catalog entry knows where the database answers and how the server administers it; a
//! registration knows which stack uses it and with what credentials. The two are kept apart as
//! in AWS (RDS and OpsWorks are different services): a registration outlives its database, which
//! then shows as `MissingOnRds`.

use serde::{Deserialize, Serialize};

use super::{Kind, Resource};

/// Where a catalog entry's database runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DbOrigin {
    /// A machine of this server runs it (CreateDBInstance).
    Managed,
    /// It runs elsewhere; an operator added it (`opsworks rds import`). The server never
    /// changes it: no reboot, no password change, and deleting the entry leaves it running.
    Imported,
}

/// A tag of a DB instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbTag {
    /// Its key.
    pub key: String,
    /// Its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A DB instance of the RDS catalog (ID: its identifier, lower-case as RDS keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbInstance {
    /// The identifier (`mydb`), unique in the account.
    pub db_instance_identifier: String,
    /// `arn:aws:rds:REGION:ACCOUNT:db:IDENTIFIER`.
    pub db_instance_arn: String,
    /// `db-` and 26 letters and digits; names the machine it runs on.
    pub dbi_resource_id: String,
    /// `mariadb`, `mysql` or `postgres`.
    pub engine: String,
    /// The version the server reports (`10.11.19`), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// `db.t3.micro`: the machine's CPU and memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_instance_class: Option<String>,
    /// GiB, recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_storage: Option<i64>,
    /// The storage type, recorded (`gp2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<String>,
    /// The master user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_username: Option<String>,
    /// The database created with it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_name: Option<String>,
    /// The port it listens on.
    pub port: u16,
    /// Where it answers (the machine's address, or the imported host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `creating`, `available`, `rebooting`, `resetting-master-credentials`, `deleting`,
    /// `failed`.
    pub status: String,
    /// Why it is `failed`, or what the last recovery did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// When it was created.
    pub instance_create_time: String,
    /// Availability zone, recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Backup retention in days, recorded (no backups are taken).
    #[serde(default)]
    pub backup_retention_period: i64,
    /// Whether DeleteDBInstance is refused.
    #[serde(default)]
    pub deletion_protection: bool,
    /// Whether it is publicly accessible, recorded.
    #[serde(default)]
    pub publicly_accessible: bool,
    /// Whether minor upgrades are automatic, recorded.
    #[serde(default = "yes")]
    pub auto_minor_version_upgrade: bool,
    /// Its tags, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<DbTag>,
    /// Managed here or imported.
    #[serde(rename = "_Origin")]
    pub origin: DbOrigin,
    /// The password of the server's own administrative account inside a managed database
    /// (`rdsadmin`, as RDS names its own), with which it changes the master password and checks
    /// health. A secret, sealed at rest; absent for imported databases.
    #[serde(
        rename = "_AdminPassword",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub admin_password: Option<String>,
    /// The server whose machines run a managed DB instance (its host name and data dir): only
    /// that server boots, reboots or removes the machine.
    #[serde(rename = "_Owner", default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

fn yes() -> bool {
    true
}

impl DbInstance {
    /// Whether this server runs it.
    pub fn is_managed(&self) -> bool {
        self.origin == DbOrigin::Managed
    }

    /// The machine it runs on (`rds-` and its resource ID, lower-case).
    pub fn machine_id(&self) -> String {
        format!("rds-{}", self.dbi_resource_id.to_ascii_lowercase())
    }
}

impl Resource for DbInstance {
    const KIND: Kind = Kind::DbInstance;
    fn id(&self) -> &str {
        &self.db_instance_identifier
    }
    fn stack_id(&self) -> Option<&str> {
        None
    }
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        self.admin_password.iter_mut().collect()
    }
}

/// A DB instance registered with a stack (ID: its ARN; one stack per database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RdsDbInstance {
    /// The DB instance's ARN.
    pub rds_db_instance_arn: String,
    /// The stack it is registered with.
    pub stack_id: String,
    /// The DB instance's identifier (the last part of the ARN).
    pub db_instance_identifier: String,
    /// The user the stack's apps connect as.
    pub db_user: String,
    /// That user's password: a secret, sealed at rest, FILTERED on the wire.
    pub db_password: String,
    /// The region of the ARN.
    pub region: String,
    /// The address and engine as last seen in the catalog, kept for when it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The engine as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// When it was registered.
    pub registered_at: String,
}

impl Resource for RdsDbInstance {
    const KIND: Kind = Kind::RdsDbInstance;
    fn id(&self) -> &str {
        &self.rds_db_instance_arn
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        vec![&mut self.db_password]
    }
}
