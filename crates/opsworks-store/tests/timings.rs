//! Rough round-trip figures of the typed store on each engine, printed, not asserted (speed
//! goals live in benchmarks): `cargo test -p opsworks-store --release --test timings --
//! --ignored --nocapture` (PostgreSQL through `OPSWORKS_TEST_DATABASE_URL`).

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, Thing, thing};
use opsworks_store::{Filter, Kind};

/// The mean time of `op` over `n` runs, after `n / 4` runs that warm the pool and caches.
async fn per_op<F, Fut>(n: u32, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 4 {
        op().await;
    }
    let start = Instant::now();
    for _ in 0..n {
        op().await;
    }
    start.elapsed() / n
}

async fn measure(db: &Fixture, label: &str) {
    let store = db.open().await;
    let mut tx = store.write().await.unwrap();
    for i in 0..200 {
        tx.put(&thing(&format!("t{i}"), "s", &format!("thing {i}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let backend = store.backend().clone();
    store.list::<Thing>(Filter::Stack("s")).await.unwrap();

    let get_cached = per_op(2000, || async {
        store.get::<Thing>("t7").await.unwrap().unwrap();
    })
    .await;
    let get_backend = per_op(2000, || async {
        backend.get(Kind::Layer, "t7").await.unwrap().unwrap();
    })
    .await;
    let list_cached = per_op(500, || async {
        assert_eq!(
            store.list::<Thing>(Filter::Stack("s")).await.unwrap().len(),
            200
        );
    })
    .await;
    let list_backend = per_op(500, || async {
        assert_eq!(
            backend
                .list(Kind::Layer, Filter::Stack("s"))
                .await
                .unwrap()
                .len(),
            200
        );
    })
    .await;
    let mut n = 0;
    let write = per_op(300, || {
        n += 1;
        let t = thing("w", "s", &format!("v{n}"));
        let store = &store;
        async move {
            let mut tx = store.write().await.unwrap();
            tx.put(&t).await.unwrap();
            tx.commit().await.unwrap();
        }
    })
    .await;
    println!(
        "{label:<10} get: {:>7.1} µs cached, {:>7.1} µs uncached | list of 200: {:>7.1} µs cached, {:>7.1} µs uncached | write of one: {:>7.1} µs",
        get_cached.as_secs_f64() * 1e6,
        get_backend.as_secs_f64() * 1e6,
        list_cached.as_secs_f64() * 1e6,
        list_backend.as_secs_f64() * 1e6,
        write.as_secs_f64() * 1e6,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints timings; run on demand"]
async fn round_trips_on_each_engine() {
    measure(&Fixture::sqlite().await, "sqlite").await;
    measure(&Fixture::postgres().await, "postgres").await;
}
