//! The store conformance suite: the behaviour every engine must show, run against each engine.

use std::sync::Arc;

use opsworks_store::{AccessKeyRecord, Engine, Filter, Kind, NewEvent, Store, Write, open};
use serde_json::json;

fn put(
    kind: Kind,
    id: &str,
    stack: Option<&str>,
    parent: Option<&str>,
    doc: serde_json::Value,
) -> Write {
    Write::Put {
        kind,
        id: id.into(),
        stack_id: stack.map(Into::into),
        parent_id: parent.map(Into::into),
        doc,
    }
}

async fn exercise(store: Arc<dyn Store>) {
    store
        .apply(vec![
            put(Kind::Stack, "s1", Some("s1"), None, json!({"Name": "one"})),
            put(Kind::Stack, "s2", Some("s2"), None, json!({"Name": "two"})),
            put(Kind::Layer, "l1", Some("s1"), None, json!({"Name": "web"})),
            put(
                Kind::Command,
                "c1",
                Some("s1"),
                Some("d1"),
                json!({"Status": "pending"}),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get(Kind::Stack, "s1").await.unwrap(),
        Some(json!({"Name": "one"}))
    );
    assert_eq!(store.get(Kind::Stack, "nope").await.unwrap(), None);
    // Kinds do not leak into each other.
    assert_eq!(store.get(Kind::Layer, "s1").await.unwrap(), None);

    let names: Vec<_> = store.list(Kind::Stack, Filter::All).await.unwrap();
    assert_eq!(names, vec![json!({"Name": "one"}), json!({"Name": "two"})]);
    assert_eq!(
        store
            .list(Kind::Layer, Filter::Stack("s1"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list(Kind::Layer, Filter::Stack("s2"))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        store
            .list(Kind::Command, Filter::Parent("d1"))
            .await
            .unwrap()
            .len(),
        1
    );
    let ids = vec!["s2".to_string(), "missing".to_string()];
    assert_eq!(
        store.list(Kind::Stack, Filter::Ids(&ids)).await.unwrap(),
        vec![json!({"Name": "two"})]
    );
    assert_eq!(
        store
            .list(Kind::Stack, Filter::Ids(&[]))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(store.count(Kind::Stack, Filter::All).await.unwrap(), 2);
    let raw = store.list_raw(Kind::Stack, Filter::All).await.unwrap();
    let parsed: Vec<serde_json::Value> = raw
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert_eq!(parsed, store.list(Kind::Stack, Filter::All).await.unwrap());
    store
        .apply(vec![put(
            Kind::Command,
            "c2",
            Some("s1"),
            Some("d1"),
            json!({"InstanceId": "i9", "Status": "pending"}),
        )])
        .await
        .unwrap();
    let by_instance = store
        .list(Kind::Command, Filter::Member("InstanceId", "i9"))
        .await
        .unwrap();
    assert_eq!(
        by_instance,
        vec![json!({"InstanceId": "i9", "Status": "pending"})]
    );
    assert!(
        store
            .list(Kind::Command, Filter::Member("Status", "pending"))
            .await
            .is_err()
    );

    // An update keeps the listing order; a delete removes.
    store
        .apply(vec![put(
            Kind::Stack,
            "s1",
            Some("s1"),
            None,
            json!({"Name": "uno"}),
        )])
        .await
        .unwrap();
    assert_eq!(
        store.list(Kind::Stack, Filter::All).await.unwrap()[0],
        json!({"Name": "uno"})
    );
    store
        .apply(vec![Write::Delete {
            kind: Kind::Stack,
            id: "s2".into(),
        }])
        .await
        .unwrap();
    assert_eq!(store.count(Kind::Stack, Filter::All).await.unwrap(), 1);

    assert_eq!(
        store.setting_or_insert("account", "111").await.unwrap(),
        "111"
    );
    assert_eq!(
        store.setting_or_insert("account", "222").await.unwrap(),
        "111"
    );
    assert_eq!(
        store.setting("account").await.unwrap().as_deref(),
        Some("111")
    );

    let key = AccessKeyRecord {
        access_key_id: "AKID".into(),
        sealed_secret: vec![1, 2, 3],
        principal: "root".into(),
        created_at: "now".into(),
    };
    store.put_access_key(key.clone()).await.unwrap();
    assert_eq!(store.access_key("AKID").await.unwrap(), Some(key));
    assert_eq!(store.access_keys().await.unwrap().len(), 1);
    assert_eq!(store.delete_access_keys_of("root").await.unwrap(), 1);
    assert_eq!(store.access_key("AKID").await.unwrap(), None);
    events(&store).await;
}

#[tokio::test]
async fn sqlite_conforms_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::Sqlite {
        path: dir.path().join("db.sqlite"),
    };
    exercise(open(&engine).await.unwrap()).await;
    // A reopened database holds the same data, with migrations already applied.
    let again = open(&engine).await.unwrap();
    assert_eq!(
        again.get(Kind::Stack, "s1").await.unwrap(),
        Some(json!({"Name": "uno"}))
    );
    assert_eq!(
        again.setting("account").await.unwrap().as_deref(),
        Some("111")
    );
}

#[tokio::test]
async fn concurrent_batches_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&Engine::Sqlite {
        path: dir.path().join("db.sqlite"),
    })
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let id = format!("{t}-{i}");
                store
                    .apply(vec![put(
                        Kind::Instance,
                        &id,
                        Some("s"),
                        None,
                        json!({"i": i}),
                    )])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        store
            .count(Kind::Instance, Filter::Stack("s"))
            .await
            .unwrap(),
        200
    );
}

#[tokio::test]
async fn postgres_is_named_but_refused_clearly() {
    let err = open(&Engine::Postgres {
        url: "postgres://x".into(),
    })
    .await
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "storage engine postgres is not available in this build"
    );
}

fn event(at: &str, stack: &str, kind: &str, instance: Option<&str>) -> NewEvent {
    NewEvent {
        at: at.into(),
        stack_id: stack.into(),
        kind: kind.into(),
        instance_id: instance.map(Into::into),
        layer_id: None,
        deployment_id: None,
        command_id: None,
        detail: json!({"To": kind}),
    }
}

/// The event log: increasing sequence numbers, filtered by stack, resumed after a seq, pruned by
/// age and by count without ever reusing a number.
async fn events(store: &Arc<dyn Store>) {
    let t = |m: u32| format!("2026-01-01T00:{m:02}:00+00:00");
    let mut seqs = Vec::new();
    for (i, stack) in ["s1", "s2", "s1", "s1"].iter().enumerate() {
        let e = event(&t(i as u32), stack, "instance_status", Some("i1"));
        seqs.push(store.append_event(&e).await.unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let s1 = store.events_after(Some("s1"), 0, 100).await.unwrap();
    assert_eq!(s1.len(), 3);
    assert_eq!(
        s1[0].event,
        event(&t(0), "s1", "instance_status", Some("i1"))
    );
    let after = store.events_after(Some("s1"), seqs[0], 100).await.unwrap();
    assert_eq!(
        after.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![seqs[2], seqs[3]]
    );
    assert_eq!(store.events_after(None, 0, 2).await.unwrap().len(), 2);
    // The newest ones, oldest first: what a page showing "the latest events" needs.
    let latest: Vec<i64> = store
        .latest_events(Some("s1"), 2)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(latest, vec![seqs[2], seqs[3]]);
    assert_eq!(store.latest_events(None, 100).await.unwrap().len(), 4);
    // Older than minute 1: one goes. Then keep only the newest two.
    assert_eq!(store.prune_events(&t(1), 1000).await.unwrap(), 1);
    assert_eq!(store.prune_events(&t(0), 2).await.unwrap(), 1);
    let left: Vec<i64> = store
        .events_after(None, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, vec![seqs[2], seqs[3]]);
    // Pruning everything never lets a number come back.
    assert_eq!(store.prune_events(&t(59), 1000).await.unwrap(), 2);
    let next = store
        .append_event(&event(&t(5), "s1", "service_error", None))
        .await
        .unwrap();
    assert!(next > seqs[3]);
}
