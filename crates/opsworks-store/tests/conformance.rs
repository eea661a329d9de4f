//! The store conformance suite: the behaviour every engine must show, run against each engine
//! through the typed [`Store`] the server uses (cache included).

use std::sync::Arc;

use opsworks_model::EventKind;
use opsworks_model::resource::{ServiceError, TagSet};
use opsworks_store::{AccessKeyRecord, Engine, Filter, Kind, NewEvent, Resource, Store, open};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A small resource for the generic behaviour (stored as a layer: the kind's namespace is all
/// the backend knows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Thing {
    id: String,
    stack: String,
    parent: Option<String>,
    instance: Option<String>,
    name: String,
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

fn thing(id: &str, stack: &str, name: &str) -> Thing {
    Thing {
        id: id.into(),
        stack: stack.into(),
        parent: None,
        instance: None,
        name: name.into(),
    }
}

fn names(things: &[opsworks_store::Cached<Thing>]) -> Vec<String> {
    things.iter().map(|t| t.name.clone()).collect()
}

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
    assert_eq!(*store.get::<ServiceError>("e1").await.unwrap().unwrap(), err);
    assert_eq!(
        store
            .list::<ServiceError>(Filter::Instance("i-1"))
            .await
            .unwrap()
            .len(),
        1
    );

    // The serialized form is made once and shared.
    let listed = store.list::<ServiceError>(Filter::Stack("s1")).await.unwrap();
    let made = listed[0].wire(|e| e.message.as_bytes().to_vec()).to_vec();
    let again = store.list::<ServiceError>(Filter::Stack("s1")).await.unwrap();
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

#[tokio::test]
async fn sqlite_conforms_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opsworks.db");
    {
        let store = open(&Engine::Sqlite { path: path.clone() }).await.unwrap();
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
    let store = open(&Engine::Sqlite { path }).await.unwrap();
    assert_eq!(
        names(&store.list::<Thing>(Filter::All).await.unwrap()),
        ["uno", "three"]
    );
    let tags = store.get::<TagSet>("arn:x").await.unwrap().unwrap();
    assert_eq!(tags.tags["env"], "prod");
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
async fn database_files_are_private() {
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

#[tokio::test]
async fn concurrent_transactions_all_land_and_checks_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        open(&Engine::Sqlite {
            path: dir.path().join("opsworks.db"),
        })
        .await
        .unwrap(),
    );
    // Twenty writers each insert a thing only if no thing of that name exists: a
    // check-then-write that only one may pass per name, in transactions.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
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
            tx.put(&thing(&format!("t{i}"), "s", "only")).await.unwrap();
            tx.put(&thing(&format!("u{i}"), "s", &format!("n{i}")))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            true
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    assert_eq!(store.count::<Thing>(Filter::Stack("s")).await.unwrap(), 2);
}

#[tokio::test]
async fn postgres_is_named_but_refused_clearly() {
    let err = match open(&Engine::Postgres {
        url: "postgres://localhost/opsworks".into(),
    })
    .await
    {
        Ok(_) => panic!("postgres opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("postgres"), "{err}");
}
