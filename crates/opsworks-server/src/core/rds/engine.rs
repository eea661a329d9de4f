//! The database engines on this host and how the control plane talks to them: which binaries
//! serve each engine (Debian's MariaDB for `mariadb` and `mysql`, Debian's PostgreSQL for
//! `postgres`) and their real version, the script that runs one as a machine's main process
//! (initialising its data dir on first boot), and the SQL the server sends over the network as
//! the database's administrative account: the master user and database at creation, a new
//! master password, a login check with any credentials.
//!
//! Secrets travel only in files placed in the machine (owner only, removed once used) and in
//! statements over the connection, never on a command line; statement logging is off on every
//! connection (the statements carry passwords), and PostgreSQL is told never to log a
//! statement's text.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;

use opsworks_model::rds::{ADMIN_USER, Engine};
use opsworks_sandbox::{FileSpec, MainProcess};

/// Where a database keeps its files inside its machine (on the machine's disk).
pub const DATA_ROOT: &str = "/var/lib/opsworks-rds";
/// Where the server's files for the database go inside its machine.
pub const CONFIG_DIR: &str = "/etc/opsworks-rds";
/// The run script (no secret in it).
const RUN_SCRIPT: &str = "/etc/opsworks-rds/run";
/// The first boot's secrets: MariaDB's init file, PostgreSQL's admin password file.
pub const INIT_FILES: [&str; 2] = ["/etc/opsworks-rds/init.sql", "/etc/opsworks-rds/admin.pw"];

/// How long a connection to a database may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);

/// What serves an engine on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEngine {
    /// The server binary (`mariadbd`, `postgres`).
    pub server: PathBuf,
    /// The data dir initialiser (`mariadb-install-db`, `initdb`).
    pub init: PathBuf,
    /// The version it reports (`10.11.19`, `15.18`).
    pub version: String,
}

/// The engine family's binaries on this host, found once; the error says what to install.
pub fn host_engine(engine: Engine) -> Result<&'static HostEngine, String> {
    static MARIADB: OnceLock<Result<HostEngine, String>> = OnceLock::new();
    static POSTGRES: OnceLock<Result<HostEngine, String>> = OnceLock::new();
    let found = if engine.is_mysql_family() {
        MARIADB.get_or_init(find_mariadb)
    } else {
        POSTGRES.get_or_init(find_postgres)
    };
    found.as_ref().map_err(Clone::clone)
}

fn version_of(binary: &Path, marker: &str) -> Option<String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for ...`, `postgres (PostgreSQL) 15.18 (Debian ...)`.
    let rest = &text[text.find(marker)? + marker.len()..];
    let word = rest.split_whitespace().next()?;
    let version: String = word
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!version.is_empty()).then_some(version)
}

fn find_mariadb() -> Result<HostEngine, String> {
    let server = ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    let init = PathBuf::from("/usr/bin/mariadb-install-db");
    match server {
        Some(server) if init.is_file() => {
            let version = version_of(&server, "Ver ")
                .ok_or_else(|| format!("{} --version says no version", server.display()))?;
            Ok(HostEngine {
                server,
                init,
                version,
            })
        }
        _ => Err("the mariadb and mysql engines need Debian's mariadb-server on this host (mariadbd and mariadb-install-db were not found)".into()),
    }
}

fn find_postgres() -> Result<HostEngine, String> {
    // Debian keeps each major version apart; the newest installed serves.
    let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    majors.sort_unstable();
    for major in majors.into_iter().rev() {
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
        let (server, init) = (bin.join("postgres"), bin.join("initdb"));
        if server.is_file() && init.is_file() {
            let version = version_of(&server, "(PostgreSQL) ")
                .ok_or_else(|| format!("{} --version says no version", server.display()))?;
            return Ok(HostEngine {
                server,
                init,
                version,
            });
        }
    }
    Err("the postgres engine needs Debian's postgresql on this host (no /usr/lib/postgresql/<version>/bin/postgres was found)".into())
}

/// The machine's main process: the run script, which initialises the data dir on first boot
/// and then becomes the database server.
pub fn main_process() -> MainProcess {
    MainProcess::new("/bin/sh", [RUN_SCRIPT])
}

/// The files of every boot (the run script, PostgreSQL's host-based authentication), and on the
/// first boot the administrative account's password (`admin_password`).
pub fn files(
    engine: Engine,
    host: &HostEngine,
    port: u16,
    admin_password: Option<&str>,
) -> Vec<FileSpec> {
    let mut out = vec![FileSpec {
        path: RUN_SCRIPT.into(),
        contents: run_script(engine, host, port).into_bytes(),
        mode: 0o700,
    }];
    if engine == Engine::Postgres {
        out.push(FileSpec {
            path: format!("{CONFIG_DIR}/pg_hba.conf").into(),
            // Password logins only, over TCP: nothing on the machine logs in without one.
            contents: b"# Written by OpsWorks RDS.\nhost all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n".to_vec(),
            mode: 0o644,
        });
    }
    if let Some(pw) = admin_password {
        let (path, contents) = if engine.is_mysql_family() {
            (
                INIT_FILES[0],
                format!(
                    "CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY {};\nGRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n",
                    mysql_string(pw)
                ),
            )
        } else {
            (INIT_FILES[1], pw.to_string())
        };
        out.push(FileSpec {
            path: path.into(),
            contents: contents.into_bytes(),
            mode: 0o600,
        });
    }
    out
}

/// The run script. The server process replaces the shell (`exec`), so the machine's init hands
/// it SIGTERM directly and the machine stops when it exits.
fn run_script(engine: Engine, host: &HostEngine, port: u16) -> String {
    let (server, init) = (host.server.display(), host.init.display());
    if engine.is_mysql_family() {
        format!(
            r#"#!/bin/sh
# Written by OpsWorks RDS: MariaDB serving this DB instance. Host defaults are not read.
set -eu
data={DATA_ROOT}/mysql
mkdir -p /run/mysqld "$data"
chown mysql:mysql /run/mysqld "$data"
init=
if [ ! -d "$data/mysql" ]; then
    {init} --no-defaults --user=mysql --datadir="$data" --auth-root-authentication-method=socket --skip-test-db >/dev/null
    chown mysql {init_sql}
    init=--init-file={init_sql}
fi
exec {server} --no-defaults --user=mysql --datadir="$data" --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid --port={port} --bind-address=0.0.0.0 --skip-name-resolve $init
"#,
            init_sql = INIT_FILES[0]
        )
    } else {
        format!(
            r#"#!/bin/sh
# Written by OpsWorks RDS: PostgreSQL serving this DB instance. Statements are never logged.
set -eu
data={DATA_ROOT}/postgres
as_postgres() {{ setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }}
mkdir -p /run/opsworks-rds "$data"
chown postgres:postgres /run/opsworks-rds "$data"
chmod 700 "$data"
cd /
if [ ! -s "$data/PG_VERSION" ]; then
    chown postgres {admin_pw}
    as_postgres {init} -D "$data" -U {ADMIN_USER} --pwfile={admin_pw} -A scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups {server} -D "$data" -c listen_addresses='*' -c port={port} -c unix_socket_directories=/run/opsworks-rds -c hba_file={CONFIG_DIR}/pg_hba.conf -c log_min_error_statement=panic
"#,
            admin_pw = INIT_FILES[1]
        )
    }
}

/// A MySQL string literal (backslash escapes are on in MariaDB's default SQL mode).
pub fn mysql_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A PostgreSQL string literal (`standard_conforming_strings` is on).
pub fn pg_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Why a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The database answered and refused the user name or password.
    #[error("access denied for user {user} (wrong user name or password)")]
    Denied {
        /// The user refused.
        user: String,
    },
    /// Nothing answered, or not in time.
    #[error("{address}:{port} does not answer: {reason}")]
    Unreachable {
        /// Where.
        address: String,
        /// The port.
        port: u16,
        /// Why.
        reason: String,
    },
    /// The server accepts connections but is still starting (PostgreSQL listens before its
    /// recovery ends and answers SQLSTATE 57P03 meanwhile).
    #[error("{address}:{port} is still starting up")]
    Starting {
        /// Where.
        address: String,
        /// The port.
        port: u16,
    },
    /// The database answered a statement with an error.
    #[error("the database refused a statement: {0}")]
    Statement(String),
}

/// Where and as whom to connect.
#[derive(Clone, Copy)]
pub struct Login<'a> {
    /// The engine.
    pub engine: Engine,
    /// The address.
    pub address: &'a str,
    /// The port.
    pub port: u16,
    /// The user.
    pub user: &'a str,
    /// The password.
    pub password: &'a str,
    /// The database to open (PostgreSQL needs one; `postgres` when none).
    pub database: Option<&'a str>,
}

fn classify(login: &Login<'_>, e: sqlx::Error) -> DbError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLSTATE class 28: invalid authorization (MySQL's 1045 is 28000 too).
            if code.starts_with("28") {
                DbError::Denied {
                    user: login.user.to_string(),
                }
            } else if code == "57P03" {
                DbError::Starting {
                    address: login.address.to_string(),
                    port: login.port,
                }
            } else {
                DbError::Statement(db.message().to_string())
            }
        }
        sqlx::Error::Io(io) => DbError::Unreachable {
            address: login.address.to_string(),
            port: login.port,
            reason: io.to_string(),
        },
        other => DbError::Unreachable {
            address: login.address.to_string(),
            port: login.port,
            reason: other.to_string(),
        },
    }
}

/// An open connection of either engine.
pub enum Conn {
    /// MariaDB.
    MySql(sqlx::MySqlConnection),
    /// PostgreSQL.
    Pg(sqlx::PgConnection),
}

/// Connects as `login` says; a PostgreSQL database that does not exist still proves the
/// credentials (the server checks them first) and answers `Ok(None)`.
pub async fn connect(login: &Login<'_>) -> Result<Option<Conn>, DbError> {
    let attempt = async {
        if login.engine.is_mysql_family() {
            let mut opts = MySqlConnectOptions::new()
                .host(login.address)
                .port(login.port)
                .username(login.user)
                .password(login.password)
                .disable_statement_logging();
            if let Some(db) = login.database {
                opts = opts.database(db);
            }
            opts.connect().await.map(|c| Some(Conn::MySql(c)))
        } else {
            let opts = PgConnectOptions::new()
                .host(login.address)
                .port(login.port)
                .username(login.user)
                .password(login.password)
                .database(login.database.unwrap_or("postgres"))
                .disable_statement_logging();
            match opts.connect().await {
                Ok(c) => Ok(Some(Conn::Pg(c))),
                // 3D000: no such database, said after the password was accepted.
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("3D000") => Ok(None),
                Err(e) => Err(e),
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(result) => result.map_err(|e| classify(login, e)),
        Err(_) => Err(DbError::Unreachable {
            address: login.address.to_string(),
            port: login.port,
            reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        }),
    }
}

/// Checks that `login` may sign in; answers the version the server reports when it could ask
/// (a PostgreSQL database that does not exist proves the credentials, but answers nothing).
pub async fn check_login(login: &Login<'_>) -> Result<Option<String>, DbError> {
    match connect(login).await? {
        Some(mut conn) => {
            let version = server_version(&mut conn).await.ok();
            close(conn).await;
            Ok(version)
        }
        None => Ok(None),
    }
}

async fn close(conn: Conn) {
    let _ = match conn {
        Conn::MySql(c) => c.close().await,
        Conn::Pg(c) => c.close().await,
    };
}

async fn execute(conn: &mut Conn, statement: &str) -> Result<(), DbError> {
    let result = match conn {
        Conn::MySql(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(c)
            .await
            .map(drop),
        Conn::Pg(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(c)
            .await
            .map(drop),
    };
    result.map_err(|e| match e {
        sqlx::Error::Database(db) => DbError::Statement(db.message().to_string()),
        other => DbError::Statement(other.to_string()),
    })
}

/// The administrative account's connection to a managed database.
async fn admin(
    engine: Engine,
    address: &str,
    port: u16,
    admin_password: &str,
) -> Result<Conn, DbError> {
    let login = Login {
        engine,
        address,
        port,
        user: ADMIN_USER,
        password: admin_password,
        database: None,
    };
    // The machine is ready once its port answers, which PostgreSQL does before it has finished
    // starting: the administrative statements wait for the end of its startup.
    let started = std::time::Instant::now();
    let conn = loop {
        match connect(&login).await {
            Err(DbError::Starting { .. }) if started.elapsed() < STARTUP_WAIT => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => break other?,
        }
    };
    conn.ok_or_else(|| {
        DbError::Statement("the postgres database of the instance is missing".into())
    })
}

/// How long the administrative account waits for a database that says it is starting up.
const STARTUP_WAIT: Duration = Duration::from_secs(90);

/// What a new database gets: its master user, and its first database when named.
pub struct Master<'a> {
    /// The master user.
    pub user: &'a str,
    /// Its password.
    pub password: &'a str,
    /// The database to create, if any.
    pub db_name: Option<&'a str>,
}

/// Creates the master user (and database) as the administrative account; answers the version
/// the server reports (`10.11.19`).
pub async fn bootstrap(
    engine: Engine,
    address: &str,
    port: u16,
    admin_password: &str,
    master: &Master<'_>,
) -> Result<String, DbError> {
    let mut conn = admin(engine, address, port, admin_password).await?;
    // User and database names were checked (letters, digits, underscores).
    let statements: Vec<String> = if engine.is_mysql_family() {
        let user = format!("'{}'@'%'", master.user);
        let mut s = vec![
            format!(
                "CREATE USER {user} IDENTIFIED BY {}",
                mysql_string(master.password)
            ),
            format!("GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION"),
        ];
        if let Some(db) = master.db_name {
            s.push(format!("CREATE DATABASE `{db}`"));
        }
        s
    } else {
        let mut s = vec![format!(
            "CREATE ROLE \"{}\" LOGIN CREATEDB CREATEROLE PASSWORD {}",
            master.user,
            pg_string(master.password)
        )];
        if let Some(db) = master.db_name {
            s.push(format!(
                "CREATE DATABASE \"{db}\" OWNER \"{}\"",
                master.user
            ));
        }
        s
    };
    let mut outcome = Ok(());
    for statement in &statements {
        outcome = execute(&mut conn, statement).await;
        if outcome.is_err() {
            break;
        }
    }
    let version = match outcome {
        Ok(()) => server_version(&mut conn).await,
        Err(e) => Err(e),
    };
    close(conn).await;
    version
}

/// The version the server reports, cut to its number.
async fn server_version(conn: &mut Conn) -> Result<String, DbError> {
    let text: String = match conn {
        Conn::MySql(c) => sqlx::query_scalar("SELECT VERSION()").fetch_one(c).await,
        Conn::Pg(c) => sqlx::query_scalar("SHOW server_version").fetch_one(c).await,
    }
    .map_err(|e| DbError::Statement(e.to_string()))?;
    Ok(text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect())
}

/// Sets the master user's password, as the administrative account.
pub async fn set_password(
    engine: Engine,
    address: &str,
    port: u16,
    admin_password: &str,
    user: &str,
    password: &str,
) -> Result<(), DbError> {
    let mut conn = admin(engine, address, port, admin_password).await?;
    let statement = if engine.is_mysql_family() {
        format!(
            "ALTER USER '{user}'@'%' IDENTIFIED BY {}",
            mysql_string(password)
        )
    } else {
        format!("ALTER ROLE \"{user}\" PASSWORD {}", pg_string(password))
    };
    let outcome = execute(&mut conn, &statement).await;
    close(conn).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_what_each_engine_reads_as_special() {
        assert_eq!(mysql_string(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(pg_string(r"a'b\c"), r"'a''b\c'");
    }

    #[test]
    fn secrets_go_only_into_the_first_boots_files() {
        let host = HostEngine {
            server: "/usr/sbin/mariadbd".into(),
            init: "/usr/bin/mariadb-install-db".into(),
            version: "10.11.19".into(),
        };
        let later = files(Engine::MariaDb, &host, 3306, None);
        assert_eq!(later.len(), 1);
        let script = String::from_utf8(later[0].contents.clone()).unwrap();
        assert!(script.contains("--port=3306") && script.contains("--no-defaults"));
        let first = files(Engine::MariaDb, &host, 3306, Some("pa'ss"));
        let init = first
            .iter()
            .find(|f| f.path == Path::new(INIT_FILES[0]))
            .unwrap();
        assert_eq!(init.mode, 0o600);
        assert!(String::from_utf8_lossy(&init.contents).contains(r"'pa\'ss'"));
        let secret = "Zq7-unlikely-secret";
        let pg = files(Engine::Postgres, &host, 5432, Some(secret));
        let holding: Vec<&FileSpec> = pg
            .iter()
            .filter(|f| String::from_utf8_lossy(&f.contents).contains(secret))
            .collect();
        assert_eq!(holding.len(), 1, "only the password file holds the secret");
        assert_eq!(holding[0].path, Path::new(INIT_FILES[1]));
        assert_eq!(
            (holding[0].contents.as_slice(), holding[0].mode),
            (secret.as_bytes(), 0o600)
        );
        assert!(
            files(Engine::Postgres, &host, 5432, None)
                .iter()
                .all(|f| !String::from_utf8_lossy(&f.contents).contains(secret))
        );
    }

    #[test]
    fn the_hosts_engines_report_their_versions() {
        // Debian's packages are what serves the engines; where one is installed its version is
        // read, where none is, the error names the package to install.
        for engine in [Engine::MariaDb, Engine::Postgres] {
            match host_engine(engine) {
                Ok(h) => assert!(h.version.contains('.'), "{engine}: {}", h.version),
                Err(e) => assert!(e.contains("Debian's"), "{engine}: {e}"),
            }
        }
    }
}
