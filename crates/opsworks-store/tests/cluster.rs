//! What servers sharing one PostgreSQL coordinate through ([`opsworks_store::Cluster`]): each
//! `Store` opened here is a server of its own, with its own pool.

mod common;

use std::time::Duration;

use common::{Fixture, thing};
use opsworks_store::{Cluster, LogAppend, ServerRecord, Store};

fn cluster(store: &Store) -> &dyn Cluster {
    store
        .backend()
        .cluster()
        .expect("PostgreSQL is shared by several servers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_engine_has_no_cluster() {
    let db = Fixture::sqlite().await;
    assert!(db.open().await.backend().cluster().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_arrive_at_commit_and_never_after_a_rollback() {
    let db = Fixture::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    let mut listener = cluster(&b).listen(&["wake", "other"]).await.unwrap();

    // Rolled back: nothing is sent.
    let mut tx = a.write().await.unwrap();
    tx.notify("wake", "dropped").await.unwrap();
    drop(tx);
    // Committed: both, in order, once the commit returned.
    let mut tx = a.write().await.unwrap();
    tx.put(&thing("x", "s", "x")).await.unwrap();
    tx.notify("wake", "i-1,i-2").await.unwrap();
    tx.notify("other", "7").await.unwrap();
    tx.commit().await.unwrap();

    let mut got = Vec::new();
    while got.len() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(5), listener.next())
            .await
            .expect("a notification within 5 s")
            .unwrap()
            .expect("the connection stays up");
        got.push((n.channel, n.payload));
    }
    assert_eq!(
        got,
        [
            ("wake".to_string(), "i-1,i-2".to_string()),
            ("other".to_string(), "7".to_string())
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.next())
            .await
            .is_err(),
        "the rolled-back notification never comes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_has_one_holder_until_it_expires_or_is_released() {
    let db = Fixture::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    let ttl = Duration::from_millis(800);
    assert!(cluster(&a).hold_lease("leader", "A", ttl).await.unwrap());
    assert!(!cluster(&b).hold_lease("leader", "B", ttl).await.unwrap());
    // The holder renews; the other still cannot take it.
    assert!(cluster(&a).hold_lease("leader", "A", ttl).await.unwrap());
    assert!(!cluster(&b).hold_lease("leader", "B", ttl).await.unwrap());
    // A holder that stops renewing loses it once it expires.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(cluster(&b).hold_lease("leader", "B", ttl).await.unwrap());
    assert!(!cluster(&a).hold_lease("leader", "A", ttl).await.unwrap());
    // Released, it goes at once; another lease name is independent.
    assert!(cluster(&a).hold_lease("other", "A", ttl).await.unwrap());
    cluster(&b).release_lease("leader", "B").await.unwrap();
    assert!(cluster(&a).hold_lease("leader", "A", ttl).await.unwrap());
    // Releasing a lease one does not hold changes nothing.
    cluster(&b).release_lease("leader", "B").await.unwrap();
    assert!(!cluster(&b).hold_lease("leader", "B", ttl).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_register_and_the_silent_ones_drop_out() {
    let db = Fixture::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    let record = |id: &str| ServerRecord {
        server_id: id.into(),
        advertise_url: format!("http://{id}.example:9730"),
        agent_url: format!("http://10.217.0.1:{}", id.len()),
        silent_seconds: 0.0,
    };
    cluster(&a).register_server(&record("a")).await.unwrap();
    cluster(&b).register_server(&record("bb")).await.unwrap();
    let all = cluster(&a).servers(Duration::from_secs(30)).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|s| s.server_id.as_str()).collect();
    assert_eq!(ids, ["a", "bb"]);
    assert_eq!(all[1].advertise_url, "http://bb.example:9730");
    assert_eq!(all[1].agent_url, "http://10.217.0.1:2");
    tokio::time::sleep(Duration::from_millis(600)).await;
    cluster(&b).register_server(&record("bb")).await.unwrap();
    let fresh = cluster(&a)
        .servers(Duration::from_millis(400))
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1, "a has not refreshed: {fresh:?}");
    assert_eq!(fresh[0].server_id, "bb");
    cluster(&b).deregister_server("bb").await.unwrap();
    assert!(
        cluster(&a)
            .servers(Duration::from_secs(30))
            .await
            .unwrap()
            .len()
            == 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_shared_and_refreshed() {
    let db = Fixture::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    cluster(&a)
        .record_presence("A", &ids(&["i-2", "i-1", "i-2"]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Both servers write overlapping sets at once (sorted inside: no deadlock).
    let many: Vec<String> = (0..3000).map(|i| format!("i-{i}")).collect();
    let mut reversed = many.clone();
    reversed.reverse();
    let (x, y) = tokio::join!(
        cluster(&a).record_presence("A", &many[..2000]),
        cluster(&b).record_presence("B", &reversed[..2000])
    );
    x.unwrap();
    y.unwrap();
    cluster(&b)
        .record_presence("B", &ids(&["i-1"]))
        .await
        .unwrap();
    let seen = cluster(&a).presence().await.unwrap();
    assert_eq!(seen.len(), 3000);
    assert!(
        seen["i-1"] < Duration::from_millis(300),
        "{:?}",
        seen["i-1"]
    );
    cluster(&a).forget_presence("i-1").await.unwrap();
    assert!(!cluster(&b).presence().await.unwrap().contains_key("i-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_appended_once_without_holes_and_read_from_any_server() {
    let db = Fixture::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    let max = 64;
    let c = "11111111-2222-3333-4444-555555555555";
    assert_eq!(cluster(&a).read_log(c, 1 << 20).await.unwrap(), None);
    assert_eq!(
        cluster(&a)
            .append_log(c, 0, "hello ", false, max)
            .await
            .unwrap(),
        LogAppend::Appended
    );
    // A retry of the same piece, and one overlapping it, through the other server.
    assert_eq!(
        cluster(&b)
            .append_log(c, 0, "hello ", false, max)
            .await
            .unwrap(),
        LogAppend::Duplicate
    );
    assert_eq!(
        cluster(&b)
            .append_log(c, 0, "hello wörld\0\n", false, max)
            .await
            .unwrap(),
        LogAppend::Appended
    );
    assert_eq!(
        cluster(&a)
            .append_log(c, 40, "later", false, max)
            .await
            .unwrap(),
        LogAppend::Gap { have: 14 }
    );
    assert_eq!(
        cluster(&a)
            .append_log(c, 14, &"x".repeat(60), false, max)
            .await
            .unwrap(),
        LogAppend::TooLarge
    );
    assert_eq!(
        cluster(&a)
            .append_log(c, 14, "done", true, max)
            .await
            .unwrap(),
        LogAppend::Ended
    );
    assert_eq!(
        cluster(&a)
            .append_log(c, 0, "hello", true, max)
            .await
            .unwrap(),
        LogAppend::Duplicate,
        "a retry after the end is fine"
    );
    assert_eq!(
        cluster(&b).read_log(c, 1 << 20).await.unwrap().as_deref(),
        Some("hello wörld\0\n")
    );
    // The tail: the last 6 bytes cut "ö" in two, which shows as U+FFFD.
    assert_eq!(
        cluster(&b).read_log(c, 6).await.unwrap().as_deref(),
        Some("\u{FFFD}rld\0\n")
    );
    // Many pieces at once from both servers: each byte once, in order.
    let d = "21111111-2222-3333-4444-555555555555";
    let text: String = (0..200).map(|i| format!("line {i:03}\n")).collect();
    let pieces: Vec<(u64, String)> = text
        .as_bytes()
        .chunks(90)
        .scan(0u64, |at, c| {
            let piece = (*at, String::from_utf8(c.to_vec()).unwrap());
            *at += c.len() as u64;
            Some(piece)
        })
        .collect();
    for (at, piece) in &pieces {
        let (x, y) = tokio::join!(
            cluster(&a).append_log(d, *at, piece, false, 1 << 20),
            cluster(&b).append_log(d, *at, piece, false, 1 << 20)
        );
        let mut outcomes = [x.unwrap(), y.unwrap()];
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(outcomes, [LogAppend::Appended, LogAppend::Duplicate]);
    }
    assert_eq!(
        cluster(&a).read_log(d, 1 << 20).await.unwrap().as_deref(),
        Some(text.as_str())
    );
    let present = cluster(&a)
        .logs_present(&[c.to_string(), d.to_string(), "nope".to_string()])
        .await
        .unwrap();
    assert_eq!(present.len(), 2);
    assert!(present.contains(c) && present.contains(d));
}
