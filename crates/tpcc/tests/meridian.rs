//! TPC-C against a real Meridian: a three-replica cluster in this process,
//! served on a loopback port. Loads a tiny (non-spec) database, runs the
//! mix for a few seconds and checks consistency conditions 1–4.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_client::Client;
use meridian_server::clock::SystemClock;
use meridian_server::cluster::{LocalCluster, LocalClusterOptions};
use meridian_tpcc::driver::{self, Mode, RunOptions};
use meridian_tpcc::txn::Kind;
use meridian_tpcc::{check, load, Scale};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_run_check() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock::new(Duration::from_millis(1)));
    let cluster = LocalCluster::open(dir.path(), clock, LocalClusterOptions::default())
        .await
        .unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(meridian_pg::serve(
        listener,
        cluster.engine(1),
        meridian_pg::PgConfig {
            password: None,
            user: "meridian".into(),
            database: "meridian".into(),
            server_version: "15.0 (Meridian)".into(),
        },
        std::future::pending::<()>(),
    ));
    let url = format!("postgres://meridian@{addr}/meridian");
    let warehouses = 2;

    let t = Instant::now();
    load::load(&url, warehouses, 4, Scale::TINY).await.unwrap();
    eprintln!("loaded in {:?}", t.elapsed());

    let client = Client::connect(&url).await.unwrap();
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            let row = client.query_one(sql, &[]).await.unwrap();
            row.get::<_, i64>(0)
        }
    };
    assert_eq!(count("SELECT count(*) FROM item").await, 1000);
    assert_eq!(count("SELECT count(*) FROM stock").await, 2000);
    assert_eq!(count("SELECT count(*) FROM customer").await, 600);
    assert_eq!(count("SELECT count(*) FROM history").await, 600);
    assert_eq!(count("SELECT count(*) FROM orders").await, 600);
    assert_eq!(count("SELECT count(*) FROM new_order").await, 180);
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE o_carrier_id IS NULL").await,
        180
    );
    for c in check::check(&client).await.unwrap() {
        assert!(c.ok(), "after load: {c:?}");
    }

    let report = driver::run(&RunOptions {
        url: url.clone(),
        warehouses,
        connections: 4,
        duration: Duration::from_secs(4),
        mode: Mode::Throughput,
        scale: Scale::TINY,
        progress: Some(Duration::from_secs(2)),
    })
    .await
    .unwrap();
    eprintln!("{}", report.render());
    let no = &report.kinds[Kind::NewOrder.index()];
    assert!(no.count - no.rolled_back > 0, "no New-Order committed");
    assert!(report.tpmc() > 0.0);
    assert_eq!(report.errors(), 0, "{:?}", report.sample_errors);

    for c in check::check(&client).await.unwrap() {
        assert!(c.ok(), "after run: {c:?}");
    }
}
