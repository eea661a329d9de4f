//! The store conformance suite: the behaviour every engine must show, run against each engine
//! through the typed [`Store`] the server uses (cache included); then what is particular to
//! each engine. Tests of several servers on one PostgreSQL are in `shared_database.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, Thing, claim, names, thing};
use opsworks_model::EventKind;
use opsworks_model::resource::{ServiceError, TagSet};
use opsworks_store::{
    AccessKeyRecord, Engine, EventRecord, Filter, Kind, NewEvent, Store, StoreError, open,
};
use serde_json::json;

async fn exercise(store: &Store) {
    let mut tx = store.write().await.unwrap();
    tx.put(&thing("a", "s1", "one")).await.unwrap();
    tx.put(&thing("b", "s2", "two")).await.unwrap();
    let mut c = thing("c", "s1", "three");
    c.parent = Some("p".into());
    c.instance = Some("i-1".into());
    tx.put(&c).await.unwrap();
    // Reads in a transaction see its own writes.
    assert_eq!(tx.count::<Thing>(Filter::Stack("s1")).await.unwrap(), 2);
    assert_eq!(tx.get::<Thing>("b").await.unwrap().unwrap().name, "two");
    tx.commit().await.unwrap();

    // Listing is in insertion order, filtered by stack, parent, instance and IDs.
    assert_eq!(
        names(&store.list::<Thing>(Filter::All).await.unwrap()),
        ["one", "two", "three"]
    );
    assert_eq!(
        names(&store.list::<Thing>(Filter::Stack("s1")).await.unwrap()),
        ["one", "three"]
    );
    assert_eq!(
        names(&store.list::<Thing>(Filter::Parent("p")).await.unwrap()),
        ["three"]
    );
    assert_eq!(
        names(&store.list::<Thing>(Filter::Instance("i-1")).await.unwrap()),
        ["three"]
    );
    let ids = vec!["c".to_string(), "zzz".to_string(), "a".to_string()];
    assert_eq!(
        names(&store.list::<Thing>(Filter::Ids(&ids)).await.unwrap()),
        ["one", "three"]
    );
    assert_eq!(store.count::<Thing>(Filter::All).await.unwrap(), 3);
    assert!(store.get::<Thing>("zzz").await.unwrap().is_none());

    // A replaced resource keeps its place; a committed change is what the next read sees, even
    // with the old one cached (read twice to be sure it was).
    assert_eq!(store.get::<Thing>("a").await.unwrap().unwrap().name, "one");
    let mut tx = store.write().await.unwrap();
    tx.put(&thing("a", "s1", "uno")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.get::<Thing>("a").await.unwrap().unwrap().name, "uno");
    assert_eq!(
        names(&store.list::<Thing>(Filter::All).await.unwrap()),
        ["uno", "two", "three"]
    );

    // A transaction dropped without commit changes nothing.
    {
        let mut tx = store.write().await.unwrap();
        tx.put(&thing("d", "s1", "four")).await.unwrap();
        tx.delete(Kind::Layer, "a").await.unwrap();
    }
    assert_eq!(store.count::<Thing>(Filter::All).await.unwrap(), 3);
    assert!(store.get::<Thing>("d").await.unwrap().is_none());

    // Deletion.
    let mut tx = store.write().await.unwrap();
    tx.delete(Kind::Layer, "b").await.unwrap();
    tx.delete(Kind::Layer, "never-there").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        names(&store.list::<Thing>(Filter::All).await.unwrap()),
        ["uno", "three"]
    );

    // A model resource round-trips whole.
    let err = ServiceError {
        service_error_id: "e1".into(),
        stack_id: "s1".into(),
        instance_id: Some("i-1".into()),
        r#type: "setup_failed".into(),
        message: "it failed".into(),
        created_at: "2026-12-07T00:00:00+00:00".into(),
    };
    let mut tx = store.write().await.unwrap();
    tx.put(&err).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        *store.get::<ServiceError>("e1").await.unwrap().unwrap(),
        err
    );
    assert_eq!(
        store
            .list::<ServiceError>(Filter::Instance("i-1"))
            .await
            .unwrap()
            .len(),
        1
    );

    // The serialized form is made once and shared.
    let listed = store
        .list::<ServiceError>(Filter::Stack("s1"))
        .await
        .unwrap();
    let made = listed[0].wire(|e| e.message.as_bytes().to_vec()).to_vec();
    let again = store
        .list::<ServiceError>(Filter::Stack("s1"))
        .await
        .unwrap();
    assert_eq!(again[0].wire(|_| b"not called".to_vec()), made.as_slice());

    // Settings.
    let b = store.backend();
    assert_eq!(b.setting("k").await.unwrap(), None);
    assert_eq!(b.setting_or_insert("k", "v1").await.unwrap(), "v1");
    assert_eq!(b.setting_or_insert("k", "v2").await.unwrap(), "v1");

    // Access keys, written in transactions.
    let key = AccessKeyRecord {
        access_key_id: "AKIA1".into(),
        sealed_secret: vec![1, 2, 3],
        principal: "root".into(),
        created_at: "now".into(),
    };
    let mut tx = store.write().await.unwrap();
    tx.put_access_key(&key).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(b.access_key("AKIA1").await.unwrap(), Some(key.clone()));
    assert_eq!(b.access_keys().await.unwrap(), vec![key]);
    let mut tx = store.write().await.unwrap();
    assert_eq!(tx.delete_access_keys_of("root").await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert!(b.access_key("AKIA1").await.unwrap().is_none());

    events(store).await;
}

fn event(stack: &str, kind: EventKind) -> NewEvent {
    NewEvent {
        at: "2026-12-07T00:00:00+00:00".into(),
        stack_id: stack.into(),
        kind,
        instance_id: Some("i".into()),
        layer_id: None,
        deployment_id: None,
        command_id: None,
        detail: json!({"To": "online"}),
    }
}

async fn events(store: &Store) {
    let mut tx = store.write().await.unwrap();
    let a = tx
        .record_event(event("s1", EventKind::InstanceStatus))
        .await
        .unwrap();
    let b = tx
        .record_event(event("s2", EventKind::ServiceError))
        .await
        .unwrap();
    let recorded = tx.commit().await.unwrap();
    assert!(b > a);
    assert_eq!(
        recorded.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![a, b]
    );
    // An event recorded in a transaction that never commits is not in the log.
    {
        let mut tx = store.write().await.unwrap();
        tx.record_event(event("s1", EventKind::CommandStatus))
            .await
            .unwrap();
    }
    let backend = store.backend();
    let all = backend.events_after(None, 0, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].event, event("s1", EventKind::InstanceStatus));
    let s1 = backend.events_after(Some("s1"), 0, 10).await.unwrap();
    assert_eq!(s1.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![a]);
    assert_eq!(
        backend.latest_events(None, 1).await.unwrap()[0].seq,
        b,
        "latest is the newest"
    );
    let s1_latest = backend.latest_events(Some("s1"), 5).await.unwrap();
    assert_eq!(s1_latest.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![a]);
    assert_eq!(backend.prune_events("9999", 1).await.unwrap(), 2);
    assert!(backend.events_after(None, 0, 10).await.unwrap().is_empty());
    // Sequence numbers are never reused after pruning.
    let mut tx = store.write().await.unwrap();
    let c = tx
        .record_event(event("s1", EventKind::TimeScaling))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(c > b);
}

on_both_engines!(
    conforms_and_persists,
    concurrent_transactions_all_land_and_checks_hold,
    a_failed_step_poisons_its_transaction,
    a_writer_given_up_while_waiting_leaves_no_lock_behind,
);

async fn conforms_and_persists(db: &Fixture) {
    {
        let store = db.open().await;
        exercise(&store).await;
        let mut tags = TagSet {
            resource_arn: "arn:x".into(),
            stack_id: "s1".into(),
            tags: Default::default(),
        };
        tags.tags.insert("env".into(), "prod".into());
        let mut tx = store.write().await.unwrap();
        tx.put(&tags).await.unwrap();
        tx.commit().await.unwrap();
    }
    // Everything acknowledged is there after reopening.
    let store = db.open().await;
    assert_eq!(
        names(&store.list::<Thing>(Filter::All).await.unwrap()),
        ["uno", "three"]
    );
    let tags = store.get::<TagSet>("arn:x").await.unwrap().unwrap();
    assert_eq!(tags.tags["env"], "prod");
    assert_eq!(store.backend().setting("k").await.unwrap().unwrap(), "v1");
    // The event log goes on where it was, numbers not reused.
    let last = store.backend().latest_events(None, 1).await.unwrap()[0].seq;
    let mut tx = store.write().await.unwrap();
    let next = tx
        .record_event(event("s1", EventKind::LoadScaling))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(next > last);
}

async fn concurrent_transactions_all_land_and_checks_hold(db: &Fixture) {
    let store = Arc::new(db.open().await);
    // Twenty writers each insert a thing only if no thing of that name exists: a
    // check-then-write that only one may pass per name, in transactions.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { claim(&store, i).await }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    assert_eq!(store.count::<Thing>(Filter::Stack("s")).await.unwrap(), 2);
}

/// A writer whose caller gives up while it waits for the write lock (a client that went away)
/// leaves no lock behind. On SQLite such a BEGIN used to run anyway once the lock came free, on a
/// connection already back in the pool: every later writer waited out its busy timeout.
async fn a_writer_given_up_while_waiting_leaves_no_lock_behind(db: &Fixture) {
    let store = db.open().await;
    // The lock held past this process's queue of writers, as the metrics writer holds it.
    let held = store.backend().begin().await.unwrap();
    let given_up = tokio::time::timeout(Duration::from_millis(300), store.write()).await;
    assert!(
        given_up.is_err(),
        "a second writer got in while the first held the lock"
    );
    held.commit().await.unwrap();
    // Time for an abandoned BEGIN still queued in the engine to take the freed lock.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // More writes than the pool has connections, so any connection left holding the lock is met.
    for i in 0..12 {
        let mut tx = tokio::time::timeout(Duration::from_secs(5), store.write())
            .await
            .unwrap_or_else(|_| panic!("write {i} waited 5 s for a lock nobody should hold"))
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
        tx.put(&thing(&format!("after-{i}"), "s1", &format!("after {i}")))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn a_failed_step_poisons_its_transaction(db: &Fixture) {
    let store = db.open().await;
    let mut tx = store.write().await.unwrap();
    let seq = tx
        .record_event(event("s1", EventKind::InstanceStatus))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A write, then a step the database refuses (an event number already taken): the
    // transaction commits nothing, even if the caller tries after the error.
    let mut tx = store.backend().begin().await.unwrap();
    let doc = serde_json::to_string(&thing("x", "s1", "ghost")).unwrap();
    tx.put(opsworks_store::Row {
        kind: Kind::Layer,
        id: "x",
        stack_id: Some("s1"),
        parent_id: None,
        instance_id: None,
        doc: &doc,
    })
    .await
    .unwrap();
    let dup = EventRecord {
        seq,
        event: event("s1", EventKind::CommandStatus),
    };
    assert!(tx.import_event(&dup).await.is_err());
    assert!(tx.commit().await.is_err(), "a failed transaction committed");
    assert!(store.get::<Thing>("x").await.unwrap().is_none());
    assert_eq!(
        store
            .backend()
            .events_after(None, 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // And the store goes on.
    let mut tx = store.write().await.unwrap();
    tx.put(&thing("y", "s1", "fine")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.get::<Thing>("y").await.unwrap().unwrap().name, "fine");
}

#[tokio::test]
async fn one_process_per_sqlite_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opsworks.db");
    let first = open(&Engine::Sqlite { path: path.clone() }).await.unwrap();
    let err = match open(&Engine::Sqlite { path: path.clone() }).await {
        Ok(_) => panic!("a second open of a locked database succeeded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("in use by another opsworks server"), "{err}");
    drop(first);
    // Released with the store.
    open(&Engine::Sqlite { path }).await.unwrap();
}

#[tokio::test]
async fn sqlite_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opsworks.db");
    let _store = open(&Engine::Sqlite { path: path.clone() }).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{p} is {mode:o}");
    }
}

#[test]
fn database_urls_name_their_engine() {
    let pg = Engine::from_url("postgres://ops:pw@db:5432/opsworks").unwrap();
    assert_eq!(
        pg,
        Engine::Postgres {
            url: "postgres://ops:pw@db:5432/opsworks".into()
        }
    );
    assert!(matches!(
        Engine::from_url("postgresql://db/opsworks").unwrap(),
        Engine::Postgres { .. }
    ));
    let sqlite = |p: &str| Engine::Sqlite { path: p.into() };
    assert_eq!(
        Engine::from_url("sqlite:///var/lib/opsworks/opsworks.db").unwrap(),
        sqlite("/var/lib/opsworks/opsworks.db")
    );
    assert_eq!(
        Engine::from_url("sqlite:data/o.db").unwrap(),
        sqlite("data/o.db")
    );
    assert_eq!(Engine::from_url("/srv/o.db").unwrap(), sqlite("/srv/o.db"));
    assert_eq!(Engine::from_url("o.db").unwrap(), sqlite("o.db"));
    for bad in ["", "sqlite://", "mysql://root:hunter2@db/opsworks"] {
        let err = Engine::from_url(bad).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("database"), "{err}");
    }
    let err = Engine::from_url("mysql://root:hunter2@db/x")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"mysql\"") && err.contains("postgres://"),
        "{err}"
    );
    // Shown without the password, however it is printed.
    for shown in [pg.to_string(), format!("{pg:?}")] {
        assert!(!shown.contains("pw"), "{shown}");
        assert!(shown.contains("ops@db:5432/opsworks"), "{shown}");
    }
}

/// The URL of the test server with another password, port or database.
fn test_url_with(edit: impl Fn(&str, &str, &str) -> String) -> String {
    let url = std::env::var(opsworks_store::testing::TEST_DATABASE_URL_VAR)
        .unwrap_or_else(|_| panic!("{}", opsworks_store::testing::SETUP_HINT));
    let rest = url
        .strip_prefix("postgres://")
        .or(url.strip_prefix("postgresql://"));
    let rest = rest.unwrap_or_else(|| panic!("the test URL is not postgres://..."));
    let (userinfo, rest) = rest.split_once('@').expect("the test URL names a user");
    let (hostport, _db) = rest.split_once('/').expect("the test URL names a database");
    let user = userinfo.split(':').next().unwrap();
    edit(user, hostport, userinfo)
}

async fn open_error(url: &str) -> String {
    match open(&Engine::Postgres { url: url.into() }).await {
        Ok(_) => panic!("opened {url}"),
        Err(e) => {
            assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
            e.to_string()
        }
    }
}

#[tokio::test]
async fn postgres_open_fails_clearly_and_keeps_the_password() {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = open_error(&format!(
        "postgres://ops:s3cr3t-pw@127.0.0.1:{port}/opsworks"
    ))
    .await;
    assert!(err.contains("cannot reach"), "{err}");
    assert!(
        err.contains(&format!("ops@127.0.0.1:{port}/opsworks")),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-pw"), "{err}");

    let missing = test_url_with(|_, hostport, userinfo| {
        format!("postgres://{userinfo}@{hostport}/opsworks_no_such_db")
    });
    let err = open_error(&missing).await;
    assert!(
        err.contains("\"opsworks_no_such_db\" does not exist") && err.contains("createdb"),
        "{err}"
    );

    let wrong = test_url_with(|user, hostport, _| {
        format!("postgres://{user}:s3cr3t-pw@{hostport}/opsworks_test")
    });
    let err = open_error(&wrong).await;
    assert!(err.contains("refused user"), "{err}");
    assert!(!err.contains("s3cr3t-pw"), "{err}");

    let err = match open(&Engine::Postgres {
        url: "postgres://ops:s3cr3t-pw@[::1/db".into(),
    })
    .await
    {
        Ok(_) => panic!("opened a malformed URL"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("invalid PostgreSQL URL"), "{err}");
    assert!(!err.contains("s3cr3t-pw"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_lost_connections() {
    let db = Fixture::postgres().await;
    let store = db.open().await;
    let mut tx = store.write().await.unwrap();
    tx.put(&thing("a", "s1", "kept")).await.unwrap();
    tx.commit().await.unwrap();

    // A transaction under way when the database drops every connection (a restart, a
    // failover): its next step fails as "unavailable", and nothing of it lands.
    let mut tx = store.write().await.unwrap();
    tx.put(&thing("b", "s1", "lost")).await.unwrap();
    terminate_connections(&db).await;
    let err = tx.put(&thing("c", "s1", "lost")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(tx.commit().await.is_err());

    // Every pooled connection dies (a database restart): reads retry until they find or make
    // a live one. Concurrent reads first fill the pool with connections to kill.
    let store = Arc::new(store);
    let readers: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    store.backend().get(Kind::Layer, "a").await.unwrap();
                }
            })
        })
        .collect();
    for r in readers {
        r.await.unwrap();
    }
    terminate_connections(&db).await;
    for _ in 0..20 {
        assert!(
            store
                .backend()
                .get(Kind::Layer, "a")
                .await
                .unwrap()
                .is_some()
        );
    }
    assert_eq!(
        names(&store.list::<Thing>(Filter::All).await.unwrap()),
        ["kept"]
    );
    let mut tx = store.write().await.unwrap();
    tx.put(&thing("d", "s1", "after")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.count::<Thing>(Filter::All).await.unwrap(), 2);
}

/// Ends every connection to the fixture's database but the caller's, as a restart would.
async fn terminate_connections(db: &Fixture) {
    use sqlx::Connection;
    let Fixture::Postgres(pg) = db else {
        unreachable!()
    };
    let mut admin = sqlx::PgConnection::connect(pg.url()).await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
}
