//! The metrics store: ingest, reads, rollups and retention, with the clock driven by the test,
//! on both engines; and on PostgreSQL, several servers ingesting while one rolls up.

mod common;

use common::Fixture;
use opsworks_store::metrics::{METRIC_COUNT, Resolution, Retention, Values};

fn v(x: f64) -> Values {
    let mut v = [0.0; METRIC_COUNT];
    v[0] = x;
    v[10] = 1000.0;
    v
}

const T0: i64 = 1_700_000_100; // 100 s past a 5-minute boundary (1_700_000_000 % 300 == 200)

on_both_engines!(samples_roll_up_into_five_minute_averages_and_age_out);

async fn samples_roll_up_into_five_minute_averages_and_age_out(db: &Fixture) {
    let store = db.open().await;
    let m = store.metrics();
    let b0 = T0.div_euclid(300) * 300;
    // 10-second samples over 20 minutes for one instance, 0..120; a retry repeats the first ten.
    let samples: Vec<(i64, Values)> = (0..120).map(|i| (b0 + i * 10, v(i as f64))).collect();
    m.insert_samples("i-1", &samples).await.unwrap();
    m.insert_samples("i-1", &samples[..10]).await.unwrap();
    m.insert_samples("i-2", &[(b0 + 5, v(50.0))]).await.unwrap();
    let ids = vec!["i-1".to_string(), "i-2".to_string(), "i-none".to_string()];
    let raw = m
        .points(&ids, Resolution::Raw, b0, b0 + 3600)
        .await
        .unwrap();
    assert_eq!(raw.len(), 121);
    assert_eq!(raw[0].values[10], 1000.0);

    let latest = m.latest().await.unwrap();
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0].at, b0 + 1190);
    assert_eq!(latest[0].values[0], 119.0);

    // At b0 + 1210 four buckets are complete (b0 .. b0+1200); the fifth is not there yet.
    let done = m.maintain(b0 + 1210, Retention::default()).await.unwrap();
    assert_eq!(done.buckets_written, 4 + 1);
    let rolled = m
        .points(&ids, Resolution::Rollup, b0, b0 + 3600)
        .await
        .unwrap();
    let i1: Vec<(i64, f64)> = rolled
        .iter()
        .filter(|p| p.instance_id == "i-1")
        .map(|p| (p.at - b0, p.values[0]))
        .collect();
    // Bucket k averages samples 30k .. 30k+29: 30k + 14.5.
    assert_eq!(i1, vec![(0, 14.5), (300, 44.5), (600, 74.5), (900, 104.5)]);

    // A late sample (an agent back from an outage) in a rolled bucket is averaged in next pass.
    m.insert_samples("i-2", &[(b0 + 15, v(100.0))])
        .await
        .unwrap();
    m.maintain(b0 + 1220, Retention::default()).await.unwrap();
    let i2 = m
        .points(&["i-2".to_string()], Resolution::Rollup, b0, b0 + 3600)
        .await
        .unwrap();
    assert_eq!(i2.len(), 1);
    assert_eq!(i2[0].values[0], 75.0);

    // A day later the raw samples are gone; the averages stay for two weeks, then go too.
    let day = 24 * 3600;
    let done = m
        .maintain(b0 + day + 1300, Retention::default())
        .await
        .unwrap();
    assert_eq!(done.samples_pruned, 122);
    assert!(
        m.points(&ids, Resolution::Raw, 0, i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        m.points(&ids, Resolution::Rollup, 0, i64::MAX)
            .await
            .unwrap()
            .len(),
        5
    );
    let done = m
        .maintain(b0 + 15 * day, Retention::default())
        .await
        .unwrap();
    assert_eq!(done.buckets_pruned, 5);
    // Shorter, configured retentions apply as given.
    m.insert_samples("i-3", &[(b0 + 15 * day, v(1.0))])
        .await
        .unwrap();
    let short = Retention {
        raw_seconds: 60,
        rollup_seconds: 600,
    };
    let done = m.maintain(b0 + 15 * day + 400, short).await.unwrap();
    assert_eq!((done.buckets_written, done.samples_pruned), (1, 1));

    // State survives a reopen: the rollup watermark and the series IDs.
    drop(store);
    let store = db.open().await;
    let done = store
        .metrics()
        .maintain(b0 + 15 * day + 400, short)
        .await
        .unwrap();
    assert_eq!(done.buckets_written, 0);
    assert_eq!(store.metrics().latest().await.unwrap().len(), 0);
}

/// The first 5-minute average of the first metric of `i-1`.
async fn rollup(s: &opsworks_store::Store) -> f64 {
    let b0 = T0.div_euclid(300) * 300;
    s.metrics()
        .points(&["i-1".to_string()], Resolution::Rollup, b0, b0 + 300)
        .await
        .unwrap()[0]
        .values[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sharing_a_postgres_share_metrics_and_rollups() {
    let db = Fixture::postgres().await;
    let (a, b) = (db.open().await, db.open().await);
    let b0 = T0.div_euclid(300) * 300;
    let samples: Vec<(i64, Values)> = (0..30).map(|i| (b0 + i * 10, v(i as f64))).collect();
    a.metrics().insert_samples("i-1", &samples).await.unwrap();
    // The other server, which never saw the instance, reads what the first stored.
    let ids = vec!["i-1".to_string()];
    let raw = b
        .metrics()
        .points(&ids, Resolution::Raw, b0, b0 + 300)
        .await
        .unwrap();
    assert_eq!(raw.len(), 30);
    assert_eq!(b.metrics().latest().await.unwrap()[0].at, b0 + 290);

    let done = a
        .metrics()
        .maintain(b0 + 310, Retention::default())
        .await
        .unwrap();
    assert_eq!(done.buckets_written, 1);
    assert_eq!(rollup(&b).await, 14.5);

    // A late sample arriving at the other server is averaged in by the next pass, whichever
    // server runs it.
    b.metrics()
        .insert_samples("i-1", &[(b0 + 5, v(45.0))])
        .await
        .unwrap();
    a.metrics()
        .maintain(b0 + 320, Retention::default())
        .await
        .unwrap();
    let averaged = (435.0 + 45.0) / 31.0;
    // Stored as f32.
    assert!((rollup(&b).await - averaged).abs() < 1e-4);

    // Passes of both servers at once follow each other; the result is the same.
    let (x, y) = tokio::join!(
        a.metrics().maintain(b0 + 330, Retention::default()),
        b.metrics().maintain(b0 + 330, Retention::default())
    );
    x.unwrap();
    y.unwrap();
    assert!((rollup(&a).await - averaged).abs() < 1e-4);
    let (raw_bytes, rolled_bytes) = a.metrics().table_bytes().await.unwrap().unwrap();
    assert!(raw_bytes > 0 && rolled_bytes > 0);
}
