//! Several servers on one PostgreSQL: each `Store` opened here is a server of its own (its own
//! pool and cache). What one writes, the others read, cached or not; the rules that must hold
//! across requests hold across servers, through the database's write lock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, Thing, claim, names, thing};
use opsworks_model::EventKind;
use opsworks_store::{
    AccessKeyRecord, Filter, Kind, NewEvent, PostgresBackend, PostgresOptions, Store, StoreError,
    open,
};

fn event(stack: &str) -> NewEvent {
    NewEvent {
        at: "2026-12-07T00:00:00+00:00".into(),
        stack_id: stack.into(),
        kind: EventKind::InstanceStatus,
        instance_id: None,
        layer_id: None,
        deployment_id: None,
        command_id: None,
        detail: serde_json::json!({}),
    }
}

async fn put(store: &Store, t: Thing) {
    let mut tx = store.write().await.unwrap();
    tx.put(&t).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_server_is_read_through_the_other() {
    let db = Fixture::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    put(&a, thing("x", "s1", "one")).await;
    // The second server reads and caches it (read twice: the second read is the cache's).
    for _ in 0..2 {
        assert_eq!(b.get::<Thing>("x").await.unwrap().unwrap().name, "one");
        assert_eq!(
            names(&b.list::<Thing>(Filter::Stack("s1")).await.unwrap()),
            ["one"]
        );
        assert_eq!(b.count::<Thing>(Filter::All).await.unwrap(), 1);
    }
    // The first changes it and adds one: the second's cached entries do not hide it.
    let mut tx = a.write().await.unwrap();
    tx.put(&thing("x", "s1", "uno")).await.unwrap();
    tx.put(&thing("y", "s1", "dos")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(b.get::<Thing>("x").await.unwrap().unwrap().name, "uno");
    assert_eq!(
        names(&b.list::<Thing>(Filter::Stack("s1")).await.unwrap()),
        ["uno", "dos"]
    );
    // And back the other way, deletion included.
    let mut tx = b.write().await.unwrap();
    tx.delete(Kind::Layer, "x").await.unwrap();
    tx.commit().await.unwrap();
    assert!(a.get::<Thing>("x").await.unwrap().is_none());
    assert_eq!(a.count::<Thing>(Filter::All).await.unwrap(), 1);

    // Settings, access keys and events are the database's, seen alike by both.
    assert_eq!(
        a.backend()
            .setting_or_insert("account", "111")
            .await
            .unwrap(),
        "111"
    );
    assert_eq!(
        b.backend()
            .setting_or_insert("account", "222")
            .await
            .unwrap(),
        "111"
    );
    let key = AccessKeyRecord {
        access_key_id: "AKIAB".into(),
        sealed_secret: vec![9; 40],
        principal: "root".into(),
        created_at: "2026-12-07T00:00:00+00:00".into(),
    };
    let mut tx = a.write().await.unwrap();
    tx.put_access_key(&key).await.unwrap();
    let seq = tx.record_event(event("s1")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(b.backend().access_key("AKIAB").await.unwrap(), Some(key));
    assert_eq!(
        b.backend().events_after(None, 0, 10).await.unwrap()[0].seq,
        seq
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_checks_spread_over_two_servers_admit_exactly_one() {
    let db = Fixture::postgres().await;
    let servers = [Arc::new(db.open().await), Arc::new(db.open().await)];
    // Both servers connected, and every writer released at once: the two first in line (one per
    // server) check at the same moment, so only the database's lock keeps both from passing.
    for s in &servers {
        drop(s.write().await.unwrap());
    }
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = servers[i % 2].clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            claim(&store, i).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    for s in &servers {
        let things = s.list::<Thing>(Filter::Stack("s")).await.unwrap();
        assert_eq!(things.iter().filter(|t| t.name == "only").count(), 1);
        assert_eq!(things.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_one_server_never_go_back_while_another_writes() {
    let db = Fixture::postgres().await;
    let (a, b) = (Arc::new(db.open().await), Arc::new(db.open().await));
    put(&a, thing("c", "s1", "0")).await;
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            for n in 1..=60 {
                let mut tx = a.write().await.unwrap();
                tx.put(&thing("c", "s1", &n.to_string())).await.unwrap();
                tx.put(&thing(&format!("d{n}"), "s1", "more"))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..2 {
        let b = b.clone();
        readers.push(tokio::spawn(async move {
            let (mut seen, mut listed) = (0, 0);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the other server still reads {seen} (a stale cache)"
                );
                let n: u32 = b
                    .get::<Thing>("c")
                    .await
                    .unwrap()
                    .unwrap()
                    .name
                    .parse()
                    .unwrap();
                assert!(n >= seen, "read {n} after {seen}");
                seen = n;
                let len = b.list::<Thing>(Filter::Stack("s1")).await.unwrap().len();
                assert!(len >= listed, "listed {len} after {listed}");
                listed = len;
                if n == 60 {
                    return len;
                }
            }
        }));
    }
    writer.await.unwrap();
    for r in readers {
        assert_eq!(r.await.unwrap(), 61);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tailing_reader_misses_no_event_of_either_server() {
    let db = Fixture::postgres().await;
    let servers = [Arc::new(db.open().await), Arc::new(db.open().await)];
    let mut writers = Vec::new();
    for (w, s) in servers.iter().enumerate() {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..30 {
                let mut tx = s.write().await.unwrap();
                mine.push(tx.record_event(event(&format!("s{w}"))).await.unwrap());
                // A number handed out here must not show before those handed out earlier.
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.commit().await.unwrap();
            }
            mine
        }));
    }
    // Resuming from the last number seen, as the live stream does: a number that became
    // visible after a higher one would be skipped.
    let tail = servers[1].clone();
    let tailer = tokio::spawn(async move {
        let (mut after, mut got) = (0, Vec::new());
        while got.len() < 60 {
            for r in tail.backend().events_after(None, after, 100).await.unwrap() {
                after = r.seq;
                got.push(r.seq);
            }
        }
        got
    });
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.unwrap());
    }
    all.sort();
    let got = tokio::time::timeout(Duration::from_secs(60), tailer)
        .await
        .expect("the tailing reader missed events")
        .unwrap();
    assert_eq!(got, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waits_for_the_other_servers_lock_then_gives_up_busy() {
    let db = Fixture::postgres().await;
    let a = db.open().await;
    let impatient = PostgresOptions {
        lock_timeout: Duration::from_millis(300),
        // One connection: the one that timed out is the one used next.
        max_connections: 1,
        ..PostgresOptions::default()
    };
    let b = Store::new(Arc::new(
        PostgresBackend::open(
            match &db.engine() {
                opsworks_store::Engine::Postgres { url } => url,
                _ => unreachable!(),
            },
            impatient,
        )
        .await
        .unwrap(),
    ));
    let mut held = a.write().await.unwrap();
    held.put(&thing("x", "s", "a's")).await.unwrap();
    let err = match b.write().await {
        Ok(_) => panic!("two servers held the write lock at once"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    assert!(err.to_string().contains("write lock"), "{err}");
    held.commit().await.unwrap();
    let mut tx = b.write().await.unwrap();
    tx.put(&thing("y", "s", "b's")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(a.count::<Thing>(Filter::All).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_on_a_new_database_both_come_up() {
    let db = Fixture::postgres().await;
    let engine = db.engine();
    let (a, b) = tokio::join!(open(&engine), open(&engine));
    let (a, b) = (a.unwrap(), b.unwrap());
    put(&a, thing("x", "s", "one")).await;
    assert_eq!(b.get::<Thing>("x").await.unwrap().unwrap().name, "one");
}
