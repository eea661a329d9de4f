//! `copy_all`: a populated SQLite store moved into PostgreSQL (what `opsworks db migrate` does)
//! arrives whole — resources in order with their indexes, settings, access keys, events with
//! their numbers, metrics — and back again; a target with data of its own is refused.

mod common;

use common::{Fixture, Thing, names, thing};
use opsworks_model::EventKind;
use opsworks_model::resource::{ServiceError, TagSet};
use opsworks_store::metrics::{METRIC_COUNT, Retention, Values};
use opsworks_store::{
    AccessKeyRecord, Backend, Filter, Kind, NewEvent, Store, StoreError, copy_all,
};

fn event(stack: &str, at: &str) -> NewEvent {
    NewEvent {
        at: at.into(),
        stack_id: stack.into(),
        kind: EventKind::DeploymentStatus,
        instance_id: Some("i-1".into()),
        layer_id: None,
        deployment_id: Some("d-1".into()),
        command_id: None,
        detail: serde_json::json!({"Status": "successful", "Nested": {"n": [1, 2]}}),
    }
}

fn sample(x: f64) -> Values {
    let mut v = [0.0; METRIC_COUNT];
    for (i, slot) in v.iter_mut().enumerate() {
        *slot = x + i as f64 / 8.0;
    }
    v
}

const B0: i64 = 1_700_000_100 / 300 * 300;

/// A store with some of everything: resources replaced and deleted (order matters), model
/// documents, settings, keys, events partly pruned, metrics raw and rolled up.
async fn populate(store: &Store) {
    let mut tx = store.write().await.unwrap();
    for (id, name) in [("a", "one"), ("b", "two"), ("c", "three"), ("d", "four")] {
        let mut t = thing(id, "s1", name);
        t.parent = Some(format!("p-{id}"));
        t.instance = Some("i-1".into());
        tx.put(&t).await.unwrap();
    }
    tx.put(&ServiceError {
        service_error_id: "e1".into(),
        stack_id: "s1".into(),
        instance_id: Some("i-1".into()),
        r#type: "setup_failed".into(),
        message: "it failed: \"quotes\", ünïcödé, \\ backslash".into(),
        created_at: "2026-12-07T00:00:00+00:00".into(),
    })
    .await
    .unwrap();
    let mut tags = TagSet {
        resource_arn: "arn:aws:opsworks:us-east-1:1:stack/s1/".into(),
        stack_id: "s1".into(),
        tags: Default::default(),
    };
    tags.tags.insert("env".into(), "prod".into());
    tx.put(&tags).await.unwrap();
    for (i, who) in ["root", "instance:i-1", "gone"].iter().enumerate() {
        tx.put_access_key(&AccessKeyRecord {
            access_key_id: format!("AKIA{i}"),
            sealed_secret: vec![i as u8; 60],
            principal: who.to_string(),
            created_at: format!("2026-12-0{}T00:00:00+00:00", i + 1),
        })
        .await
        .unwrap();
    }
    for day in 1..=6 {
        tx.record_event(event("s1", &format!("2026-12-0{day}T00:00:00+00:00")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // A replaced resource keeps its place; a deleted one leaves a gap; a key goes.
    let mut tx = store.write().await.unwrap();
    tx.put(&thing("a", "s2", "uno")).await.unwrap();
    tx.delete(Kind::Layer, "b").await.unwrap();
    tx.put(&thing("e", "s2", "five")).await.unwrap();
    tx.delete_access_keys_of("gone").await.unwrap();
    tx.commit().await.unwrap();
    // The two oldest events go: the copy keeps numbers 3 to 6.
    assert_eq!(
        store
            .backend()
            .prune_events("2026-12-03T00:00:00+00:00", 100)
            .await
            .unwrap(),
        2
    );
    let b = store.backend();
    b.setting_or_insert("account_id", "123456789012")
        .await
        .unwrap();
    b.setting_or_insert("region", "us-east-1").await.unwrap();
    let m = store.metrics();
    let raw: Vec<(i64, Values)> = (0..60).map(|i| (B0 + i * 10, sample(i as f64))).collect();
    m.insert_samples("i-1", &raw).await.unwrap();
    m.insert_samples("i-2", &[(B0 + 7, sample(3.5))])
        .await
        .unwrap();
    m.maintain(B0 + 610, Retention::default()).await.unwrap();
    m.insert_samples("i-1", &[(B0 + 700, sample(99.0))])
        .await
        .unwrap();
}

/// Everything a backend holds, in a comparable form.
async fn contents(b: &dyn Backend) -> String {
    let mut out = String::new();
    for kind in Kind::ALL {
        out += &format!("{:?}\n", b.export_rows(kind).await.unwrap());
    }
    out += &format!("{:?}\n", b.settings().await.unwrap());
    out += &format!("{:?}\n", b.access_keys().await.unwrap());
    out += &format!("{:?}\n", b.events_after(None, 0, 1000).await.unwrap());
    out += &format!("{}\n", b.event_seq_high_water().await.unwrap());
    let m = b.metrics();
    for instance in m.series().await.unwrap() {
        out += &format!(
            "{instance}: {:?}\n",
            m.export_series(&instance).await.unwrap()
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_moves_into_postgres_whole_and_back() {
    let (sqlite, pg) = (Fixture::sqlite().await, Fixture::postgres().await);
    let source = sqlite.open().await;
    populate(&source).await;
    let target = pg.open().await;
    let report = copy_all(&**source.backend(), &**target.backend())
        .await
        .unwrap();
    assert_eq!(report.total_resources(), 6, "{report}");
    assert!(report.resources.contains(&(Kind::Layer, 4)), "{report}");
    assert_eq!(
        (report.settings, report.access_keys, report.events),
        (3, 2, 4),
        "{report}"
    );
    assert_eq!(
        (
            report.metric_series,
            report.metric_samples,
            report.metric_rollups
        ),
        (2, 62, 3),
        "{report}"
    );
    assert!(
        report
            .to_string()
            .starts_with("copied 6 resources (layer 4, service_error 1, tags 1)")
    );

    let expected = contents(&**source.backend()).await;
    assert!(expected.contains("uno") && expected.contains("metrics_rolled_until"));
    assert_eq!(contents(&**target.backend()).await, expected);

    // The server's view: typed reads, listing order and index columns, on the new engine.
    assert_eq!(
        names(&target.list::<Thing>(Filter::All).await.unwrap()),
        ["uno", "three", "four", "five"]
    );
    assert_eq!(
        names(&target.list::<Thing>(Filter::Parent("p-c")).await.unwrap()),
        ["three"]
    );
    assert_eq!(
        target
            .count::<Thing>(Filter::Instance("i-1"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(target.count::<Thing>(Filter::Stack("s2")).await.unwrap(), 2);
    // Events go on above the copied numbers, and the log tails from where a client was.
    let mut tx = target.write().await.unwrap();
    let next = tx
        .record_event(event("s1", "2026-12-08T00:00:00+00:00"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next, 7);
    let tail = target
        .backend()
        .events_after(Some("s1"), 5, 10)
        .await
        .unwrap();
    assert_eq!(tail.iter().map(|r| r.seq).collect::<Vec<_>>(), [6, 7]);
    // The copied rollup watermark holds: the next pass rolls only the new bucket.
    let done = target
        .metrics()
        .maintain(B0 + 910, Retention::default())
        .await
        .unwrap();
    assert_eq!(done.buckets_written, 1);

    // And back into a new SQLite store, which then matches the PostgreSQL one.
    let back = Fixture::sqlite().await;
    let returned = back.open().await;
    copy_all(&**target.backend(), &**returned.backend())
        .await
        .unwrap();
    assert_eq!(
        contents(&**returned.backend()).await,
        contents(&**target.backend()).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_data_of_its_own_is_refused_untouched() {
    let (sqlite, pg) = (Fixture::sqlite().await, Fixture::postgres().await);
    let source = sqlite.open().await;
    populate(&source).await;
    let target = pg.open().await;
    copy_all(&**source.backend(), &**target.backend())
        .await
        .unwrap();
    let before = contents(&**target.backend()).await;
    let err = copy_all(&**source.backend(), &**target.backend())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TargetNotEmpty(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("6 resources") && msg.contains("2 access keys"),
        "{msg}"
    );
    assert_eq!(contents(&**target.backend()).await, before);

    // A target that only has another account's settings is refused too, naming the key only.
    let other = Fixture::postgres().await;
    let other = other.open().await;
    other
        .backend()
        .setting_or_insert("account_id", "999999999999")
        .await
        .unwrap();
    let msg = copy_all(&**source.backend(), &**other.backend())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("account_id") && !msg.contains("999999999999"),
        "{msg}"
    );
    assert!(other.backend().access_keys().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_of_pruned_events_are_not_handed_out_again_after_a_copy() {
    let (sqlite, pg) = (Fixture::sqlite().await, Fixture::postgres().await);
    let source = sqlite.open().await;
    let mut tx = source.write().await.unwrap();
    for _ in 0..3 {
        tx.record_event(event("s1", "2026-12-01T00:00:00+00:00"))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // Every event pruned: the log is empty, its high water 3.
    source.backend().prune_events("2027", 0).await.unwrap();
    let target = pg.open().await;
    let report = copy_all(&**source.backend(), &**target.backend())
        .await
        .unwrap();
    assert_eq!(report.events, 0);
    let mut tx = target.write().await.unwrap();
    let next = tx
        .record_event(event("s1", "2026-12-02T00:00:00+00:00"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(next, 4);
}
