//! Support for tests that run on PostgreSQL, this crate's and those of the crates above it: each
//! test gets a fresh database of its own on the server `OPSWORKS_TEST_DATABASE_URL` names, so
//! tests run in parallel, and the database goes when the test ends (passed or panicked).
//!
//! A test that needs PostgreSQL and finds no URL fails saying how to set one up; it never skips.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection};

use crate::Engine;
use crate::postgres::redact;

/// The environment variable naming the PostgreSQL the tests use.
pub const TEST_DATABASE_URL_VAR: &str = opsworks_env::OPSWORKS_TEST_DATABASE_URL;

/// What a test without [`TEST_DATABASE_URL_VAR`] says.
pub const SETUP_HINT: &str = "OPSWORKS_TEST_DATABASE_URL is not set: this test runs on PostgreSQL and needs a server where it may create databases. Set one up (as root; it installs Debian's postgresql-15 if absent, starts the cluster, creates the role and database) and export the URL it prints:\n    export OPSWORKS_TEST_DATABASE_URL=\"$(sudo scripts/postgres-test-setup.sh)\"\n(a URL like postgres://opsworks:opsworks@127.0.0.1:5432/opsworks_test)";

/// A database made for one test, dropped with this value.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database on the server [`TEST_DATABASE_URL_VAR`] names.
    ///
    /// # Panics
    /// When the variable is unset or the server refuses (with what to do): this is for tests.
    pub async fn create() -> Self {
        let admin_url = match std::env::var(TEST_DATABASE_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
            _ => panic!("{SETUP_HINT}"),
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "opsworks_t_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to {} ({TEST_DATABASE_URL_VAR}): {e}\nIs the server running? `sudo scripts/postgres-test-setup.sh` starts it.",
                redact(&admin_url)
            )
        });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a test database on {}: {e}\nThe role needs CREATEDB (`sudo scripts/postgres-test-setup.sh` grants it).",
                    redact(&admin_url)
                )
            });
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The engine to open it with.
    pub fn engine(&self) -> Engine {
        Engine::Postgres {
            url: self.url.clone(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a runtime (or while one unwinds): a thread of its own with a
        // runtime of its own can block.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        if let Ok(Err(e)) | Err(e) = dropped.map_err(|_| "panicked".to_string()) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// `url` with its database replaced by `name` (query kept).
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let query = tail.find('?').map(|q| &tail[q..]).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_swapped_in_url() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5432/base?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://h", "t1"),
            "postgres://h/t1"
        );
    }
}
