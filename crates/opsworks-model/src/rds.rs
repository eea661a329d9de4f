//! RDS rules the service model does not carry: identifiers, engines, master user names and
//! passwords, database names, ports, storage and classes, with RDS's limits and wording
//! (`shared/reference/aws-services.md` §8), and the ARNs of DB instances.
//!
//! Each refusal says which RDS error it is ([`RdsRuleError::code`]): a value that is wrong in
//! itself is `InvalidParameterValue`, one that does not go with the engine or with what this
//! server can do is `InvalidParameterCombination`.

use std::fmt;

/// The engines served, and what serves them on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// `mariadb`: Debian's MariaDB.
    MariaDb,
    /// `mysql`: also Debian's MariaDB, which speaks MySQL's protocol and SQL.
    MySql,
    /// `postgres`: Debian's PostgreSQL.
    Postgres,
}

impl Engine {
    /// Every engine served.
    pub const ALL: [Engine; 3] = [Engine::MariaDb, Engine::MySql, Engine::Postgres];

    /// RDS's name (`Engine` on the wire).
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::MariaDb => "mariadb",
            Engine::MySql => "mysql",
            Engine::Postgres => "postgres",
        }
    }

    /// The engine of an RDS name. RDS's other engines (`aurora-*`, `oracle-*`, `sqlserver-*`,
    /// `db2-*`, `custom-*`) are refused as not served here.
    pub fn parse(name: &str) -> Result<Engine, RdsRuleError> {
        match name.to_ascii_lowercase().as_str() {
            "mariadb" => Ok(Engine::MariaDb),
            "mysql" => Ok(Engine::MySql),
            "postgres" => Ok(Engine::Postgres),
            other if KNOWN_ELSEWHERE.iter().any(|p| other.starts_with(p)) => {
                Err(RdsRuleError::Combination(format!(
                    "The engine {other} is not served by this server: use mariadb, mysql or postgres."
                )))
            }
            other => Err(RdsRuleError::Value(format!("Invalid DB engine: {other}"))),
        }
    }

    /// Whether it speaks MySQL's protocol (MariaDB serves both).
    pub fn is_mysql_family(self) -> bool {
        matches!(self, Engine::MariaDb | Engine::MySql)
    }

    /// The port it listens on unless told otherwise.
    pub fn default_port(self) -> u16 {
        if self.is_mysql_family() { 3306 } else { 5432 }
    }

    /// The adapter name apps' frameworks use (`node["deploy"][app]["database"]["adapter"]`).
    pub fn adapter(self) -> &'static str {
        if self.is_mysql_family() {
            "mysql"
        } else {
            "postgresql"
        }
    }

    /// The longest master user name.
    fn max_username(self) -> usize {
        if self.is_mysql_family() { 16 } else { 63 }
    }

    /// The longest master password.
    fn max_password(self) -> usize {
        if self.is_mysql_family() { 41 } else { 128 }
    }

    /// The longest database name.
    fn max_db_name(self) -> usize {
        if self.is_mysql_family() { 64 } else { 63 }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Engine names of RDS that this server does not serve (so the refusal says so, rather than
/// calling the name invalid).
const KNOWN_ELSEWHERE: [&str; 6] = ["aurora", "oracle", "sqlserver", "db2", "custom-", "neptune"];

/// Why a value was refused, with RDS's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdsRuleError {
    /// A value wrong in itself (`InvalidParameterValue`).
    #[error("{0}")]
    Value(String),
    /// A value that does not go with the others, or with this server (`InvalidParameterCombination`).
    #[error("{0}")]
    Combination(String),
}

impl RdsRuleError {
    /// RDS's error code.
    pub fn code(&self) -> &'static str {
        match self {
            RdsRuleError::Value(_) => "InvalidParameterValue",
            RdsRuleError::Combination(_) => "InvalidParameterCombination",
        }
    }
}

fn value<T>(message: impl Into<String>) -> Result<T, RdsRuleError> {
    Err(RdsRuleError::Value(message.into()))
}

/// A DB instance identifier as RDS keeps it (lower-case): 1 to 63 letters, digits and hyphens,
/// first a letter, no hyphen at the end and no two in a row.
pub fn identifier(id: &str) -> Result<String, RdsRuleError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if ok {
        Ok(id.to_ascii_lowercase())
    } else {
        value(format!(
            "The parameter DBInstanceIdentifier is not a valid identifier. Identifiers must begin with a letter; must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen or contain two consecutive hyphens. Got '{id}'."
        ))
    }
}

/// The master user name: required, 1 to 16 (MySQL family) or 63 (PostgreSQL) letters, digits and
/// underscores, first a letter, not a name the engine or this server keeps for itself.
pub fn master_username(engine: Engine, name: Option<&str>) -> Result<String, RdsRuleError> {
    let Some(name) = name else {
        return value("The parameter MasterUsername must be provided and must not be null.");
    };
    let shape_ok = !name.is_empty()
        && name.len() <= engine.max_username()
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !shape_ok {
        return value(format!(
            "The parameter MasterUsername is not a valid identifier: it must be 1 to {} letters, digits or underscores, beginning with a letter, for {engine}.",
            engine.max_username()
        ));
    }
    let lower = name.to_ascii_lowercase();
    let reserved = lower == ADMIN_USER
        || (engine.is_mysql_family() && ["root", "mysql"].contains(&lower.as_str()))
        || (engine == Engine::Postgres && (lower.starts_with("pg_") || lower == "public"));
    if reserved {
        return value(format!(
            "MasterUsername {name} cannot be used as it is a reserved word used by the engine"
        ));
    }
    Ok(name.to_string())
}

/// The account the server administers a managed database with (RDS's own is named so too).
pub const ADMIN_USER: &str = "rdsadmin";

/// A master password: required, 8 to 41 (MySQL family) or 128 (PostgreSQL) printable ASCII
/// characters other than `/`, `"`, `@` and space. The value is never echoed.
pub fn master_password(engine: Engine, password: Option<&str>) -> Result<(), RdsRuleError> {
    let Some(pw) = password else {
        return value("The parameter MasterUserPassword must be provided and must not be null.");
    };
    if !pw
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '"' | '@'))
    {
        return value(
            "The parameter MasterUserPassword is not a valid password. Only printable ASCII characters besides '/', '@', '\"', ' ' may be used.",
        );
    }
    if pw.len() < 8 {
        return value(
            "The parameter MasterUserPassword is not a valid password because it is shorter than 8 characters.",
        );
    }
    if pw.len() > engine.max_password() {
        return value(format!(
            "The parameter MasterUserPassword is not a valid password because it is longer than {} characters.",
            engine.max_password()
        ));
    }
    Ok(())
}

/// The name of the database created with the instance, when given: 1 to 64 (MySQL family) or 63
/// (PostgreSQL) letters, digits and underscores, first a letter (or `_` for PostgreSQL).
pub fn db_name(engine: Engine, name: &str) -> Result<(), RdsRuleError> {
    let first_ok = name
        .starts_with(|c: char| c.is_ascii_alphabetic() || (engine == Engine::Postgres && c == '_'));
    let ok = !name.is_empty()
        && name.len() <= engine.max_db_name()
        && first_ok
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let reserved = engine == Engine::Postgres && ["template0", "template1"].contains(&name);
    if ok && !reserved {
        Ok(())
    } else {
        value(format!(
            "The parameter DBName is not a valid database name for {engine}: it must be 1 to {} letters, digits or underscores and begin with a letter, and not be a name the engine keeps. Got '{name}'.",
            engine.max_db_name()
        ))
    }
}

/// The port: RDS allows 1150 to 65535.
pub fn port(port: i64) -> Result<u16, RdsRuleError> {
    match u16::try_from(port) {
        Ok(p) if p >= 1150 => Ok(p),
        _ => value(format!(
            "Invalid port {port}: the port must be between 1150 and 65535."
        )),
    }
}

/// Allocated storage in GiB: required, 20 to 65536 (gp2, gp3 and io1 alike here).
pub fn allocated_storage(
    engine: Engine,
    storage: Option<i64>,
    storage_type: &str,
) -> Result<i64, RdsRuleError> {
    match storage {
        None => value("The parameter AllocatedStorage must be provided and must not be null."),
        Some(gib) if (20..=65536).contains(&gib) => Ok(gib),
        Some(gib) => value(format!(
            "Invalid storage size for engine name {engine} and storage type {storage_type}: {gib}"
        )),
    }
}

/// The storage types recorded (none changes anything here).
pub const STORAGE_TYPES: [&str; 4] = ["gp2", "gp3", "io1", "standard"];

/// A DB instance class: `db.` and an instance type (`db.t3.micro`, `db.r6g.large`); answers its
/// size (the machine's CPU and memory, by `instance_types::size_of`).
pub fn instance_class(
    engine: Engine,
    class: &str,
) -> Result<crate::instance_types::InstanceSize, RdsRuleError> {
    let shaped = class.strip_prefix("db.").filter(|t| {
        let mut parts = t.split('.');
        let (family, size) = (parts.next(), parts.next());
        parts.next().is_none()
            && [family, size].iter().all(|p| {
                p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
            })
    });
    match shaped {
        Some(t) => Ok(crate::instance_types::size_of(t)),
        None => Err(RdsRuleError::Combination(format!(
            "RDS does not support creating a DB instance with the following combination: DBInstanceClass={class}, Engine={engine}. A class is db. and an instance type (db.t3.micro, db.m5.large, ...)."
        ))),
    }
}

/// A requested engine version against the one the host serves: it must be that version or a
/// prefix of it (`10.11` of `10.11.19`).
pub fn engine_version(engine: Engine, wanted: &str, served: &str) -> Result<(), RdsRuleError> {
    let matches = served == wanted
        || served
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('.'));
    if matches {
        Ok(())
    } else {
        Err(RdsRuleError::Combination(format!(
            "Cannot find version {wanted} for {engine}: this server runs {engine} {served}."
        )))
    }
}

/// `arn:aws:rds:REGION:ACCOUNT:db:IDENTIFIER`.
pub fn db_arn(region: &str, account: &str, identifier: &str) -> String {
    format!("arn:aws:rds:{region}:{account}:db:{identifier}")
}

/// The parts of a DB instance ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbArn<'a> {
    /// Its region.
    pub region: &'a str,
    /// Its account.
    pub account: &'a str,
    /// The DB instance identifier.
    pub identifier: &'a str,
}

/// Parses a DB instance ARN; `None` when it is not one.
pub fn parse_db_arn(arn: &str) -> Option<DbArn<'_>> {
    let mut parts = arn.splitn(7, ':');
    let fields: [&str; 7] = std::array::from_fn(|_| parts.next().unwrap_or(""));
    let [prefix, partition, service, region, account, kind, name] = fields;
    let ok = prefix == "arn"
        && partition.starts_with("aws")
        && service == "rds"
        && !region.is_empty()
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && kind == "db"
        && identifier(name).is_ok();
    ok.then_some(DbArn {
        region,
        account,
        identifier: name,
    })
}

/// A new `DbiResourceId`: `db-` and 26 upper-case letters and digits, as RDS makes them.
pub fn new_resource_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut out = String::from("db-");
    for _ in 0..26 {
        out.push(char::from(ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_rds_rules_and_are_kept_lower_case() {
        assert_eq!(identifier("MyDb-1").unwrap(), "mydb-1");
        for bad in [
            "",
            "1db",
            "db-",
            "a--b",
            "db_1",
            "db.1",
            &"a".repeat(64),
            "da\u{e9}",
        ] {
            let e = identifier(bad).unwrap_err();
            assert_eq!(e.code(), "InvalidParameterValue", "{bad:?}");
            assert!(e.to_string().contains("not a valid identifier"), "{bad:?}");
        }
        assert!(identifier(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn engines_are_parsed_and_others_refused_clearly() {
        assert_eq!(Engine::parse("MariaDB").unwrap(), Engine::MariaDb);
        assert_eq!(Engine::parse("postgres").unwrap().default_port(), 5432);
        let e = Engine::parse("aurora-mysql").unwrap_err();
        assert_eq!(e.code(), "InvalidParameterCombination");
        assert!(e.to_string().contains("not served"));
        let e = Engine::parse("foo").unwrap_err();
        assert_eq!(e.to_string(), "Invalid DB engine: foo");
        assert_eq!(Engine::MySql.adapter(), "mysql");
        assert_eq!(Engine::Postgres.adapter(), "postgresql");
    }

    #[test]
    fn master_user_names_and_passwords_follow_each_engine() {
        assert_eq!(
            master_username(Engine::MySql, Some("admin")).unwrap(),
            "admin"
        );
        assert!(master_username(Engine::MySql, None).is_err());
        assert!(master_username(Engine::MySql, Some(&"a".repeat(17))).is_err());
        assert!(master_username(Engine::Postgres, Some(&"a".repeat(17))).is_ok());
        assert!(master_username(Engine::Postgres, Some("1abc")).is_err());
        for reserved in ["rdsadmin", "RDSADMIN", "root"] {
            let e = master_username(Engine::MariaDb, Some(reserved)).unwrap_err();
            assert!(e.to_string().contains("reserved word"), "{reserved}");
        }
        assert!(master_username(Engine::Postgres, Some("pg_admin")).is_err());
        assert!(master_username(Engine::Postgres, Some("postgres")).is_ok());

        assert!(master_password(Engine::MySql, Some("s3cret-pass!")).is_ok());
        let short = master_password(Engine::MySql, Some("short")).unwrap_err();
        assert!(short.to_string().contains("shorter than 8"));
        assert!(!short.to_string().contains("short\""));
        for bad in ["has space1", "slash/slash", "at@at@at", "quote\"quote"] {
            let e = master_password(Engine::Postgres, Some(bad)).unwrap_err();
            assert!(e.to_string().contains("printable ASCII"), "{bad}");
            assert!(!e.to_string().contains(bad), "the password is echoed");
        }
        assert!(master_password(Engine::MySql, Some(&"p".repeat(42))).is_err());
        assert!(master_password(Engine::Postgres, Some(&"p".repeat(42))).is_ok());
        assert!(master_password(Engine::MySql, None).is_err());
    }

    #[test]
    fn names_ports_storage_and_classes() {
        assert!(db_name(Engine::MySql, "shop_1").is_ok());
        assert!(db_name(Engine::MySql, "_shop").is_err());
        assert!(db_name(Engine::Postgres, "_shop").is_ok());
        assert!(db_name(Engine::Postgres, "template1").is_err());
        assert!(db_name(Engine::MySql, "a-b").is_err());
        assert_eq!(port(3306).unwrap(), 3306);
        assert!(port(80).is_err());
        assert!(port(70000).is_err());
        assert_eq!(
            allocated_storage(Engine::MariaDb, Some(20), "gp2").unwrap(),
            20
        );
        let e = allocated_storage(Engine::MariaDb, Some(5), "gp2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid storage size for engine name mariadb and storage type gp2: 5"
        );
        assert!(allocated_storage(Engine::MariaDb, None, "gp2").is_err());
        assert_eq!(
            instance_class(Engine::MySql, "db.t3.micro")
                .unwrap()
                .memory_mib,
            1024
        );
        assert_eq!(
            instance_class(Engine::MySql, "db.r6g.large").unwrap().vcpus,
            2
        );
        for bad in ["t3.micro", "db.t3", "db.t3.micro.x", "db..micro"] {
            let e = instance_class(Engine::MySql, bad).unwrap_err();
            assert_eq!(e.code(), "InvalidParameterCombination", "{bad}");
        }
    }

    #[test]
    fn versions_match_by_prefix() {
        assert!(engine_version(Engine::MariaDb, "10.11", "10.11.19").is_ok());
        assert!(engine_version(Engine::MariaDb, "10.11.19", "10.11.19").is_ok());
        assert!(engine_version(Engine::MariaDb, "10.1", "10.11.19").is_err());
        assert!(engine_version(Engine::Postgres, "16", "15.18").is_err());
    }

    #[test]
    fn arns_round_trip_and_malformed_ones_are_refused() {
        let arn = db_arn("us-east-1", "123456789012", "mydb");
        let p = parse_db_arn(&arn).unwrap();
        assert_eq!(
            (p.region, p.account, p.identifier),
            ("us-east-1", "123456789012", "mydb")
        );
        for bad in [
            "mydb",
            "arn:aws:rds:us-east-1:123456789012:cluster:mydb",
            "arn:aws:rds:us-east-1:1234:db:mydb",
            "arn:aws:opsworks:us-east-1:123456789012:db:mydb",
            "arn:aws:rds:us-east-1:123456789012:db:my--db",
            "arn:aws:rds::123456789012:db:mydb",
        ] {
            assert!(parse_db_arn(bad).is_none(), "{bad}");
        }
        let id = new_resource_id();
        assert_eq!(id.len(), 29);
        assert!(id.starts_with("db-"));
        assert_ne!(id, new_resource_id());
    }
}
