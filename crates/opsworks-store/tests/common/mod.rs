//! What the store's test files share: a database of either engine to test against, and the
//! macro that runs one test body on both.

#![allow(dead_code)]

use opsworks_store::testing::TestDatabase;
use opsworks_store::{Engine, Filter, Kind, Resource, Store, open};
use serde::{Deserialize, Serialize};

/// A fresh database of one engine, removed when dropped.
pub enum Fixture {
    /// A SQLite file in a temporary directory.
    Sqlite(tempfile::TempDir),
    /// A PostgreSQL database of its own (`OPSWORKS_TEST_DATABASE_URL`).
    Postgres(TestDatabase),
}

impl Fixture {
    pub async fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    /// Fails (never skips) without `OPSWORKS_TEST_DATABASE_URL`, saying how to set it.
    pub async fn postgres() -> Self {
        Self::Postgres(TestDatabase::create().await)
    }

    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(dir) => Engine::Sqlite {
                path: dir.path().join("opsworks.db"),
            },
            Self::Postgres(db) => db.engine(),
        }
    }

    /// The typed store on it (a "server"; the SQLite one admits one at a time).
    pub async fn open(&self) -> Store {
        open(&self.engine()).await.unwrap()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// Runs each named `async fn(&Fixture)` as two tests, `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(&$crate::common::Fixture::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(&$crate::common::Fixture::postgres().await).await
            }
        }
    )*};
}

/// A small resource for the generic behaviour (stored as a layer: the kind's namespace is all
/// the backend knows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thing {
    pub id: String,
    pub stack: String,
    pub parent: Option<String>,
    pub instance: Option<String>,
    pub name: String,
}

impl Resource for Thing {
    const KIND: Kind = Kind::Layer;
    fn id(&self) -> &str {
        &self.id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack)
    }
    fn parent_id(&self) -> Option<&str> {
        self.parent.as_deref()
    }
    fn instance_id(&self) -> Option<&str> {
        self.instance.as_deref()
    }
}

pub fn thing(id: &str, stack: &str, name: &str) -> Thing {
    Thing {
        id: id.into(),
        stack: stack.into(),
        parent: None,
        instance: None,
        name: name.into(),
    }
}

pub fn names(things: &[opsworks_store::Cached<Thing>]) -> Vec<String> {
    things.iter().map(|t| t.name.clone()).collect()
}

/// Inserts the thing named "only" (and one more) unless it exists; whether it did.
pub async fn claim(store: &Store, i: usize) -> bool {
    let mut tx = store.write().await.unwrap();
    let taken = tx
        .list::<Thing>(Filter::Stack("s"))
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == "only");
    if taken {
        return false;
    }
    // Give a competitor every chance to slip in between the check and the write.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    tx.put(&thing(&format!("t{i}"), "s", "only")).await.unwrap();
    tx.put(&thing(&format!("u{i}"), "s", &format!("n{i}")))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    true
}
