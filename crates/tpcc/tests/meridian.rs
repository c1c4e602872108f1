//! TPC-C against a real Meridian: a three-node cluster of three groups in
//! this process, served on a loopback port. Loads a tiny (non-spec)
//! database with each warehouse in ranges of its own (warehouse 1 in group
//! 1, warehouse 2 in group 2: remote-warehouse transactions commit across
//! groups), runs the mix for a few seconds and checks consistency
//! conditions 1–12 (11 right after the load); once more, with the default layout (each table in a
//! range of its own, dealt round the groups, so most transactions commit
//! with two-phase commit), while a node leading a group is stopped and
//! restarted in the middle of the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_client::Client;
use meridian_server::clock::SystemClock;
use meridian_server::cluster::{LocalCluster, LocalClusterOptions};
use meridian_tpcc::driver::{self, Mode, RunOptions};
use meridian_tpcc::load::Layout;
use meridian_tpcc::txn::Kind;
use meridian_tpcc::{check, load, placement, Scale};

/// A three-node, three-group cluster in this process, its node 1 serving
/// SQL on a loopback port; returns it with its URL.
async fn serve(dir: &std::path::Path) -> (LocalCluster, String) {
    let clock = Arc::new(SystemClock::new(Duration::from_millis(1)));
    let options = LocalClusterOptions {
        groups: 3,
        ..LocalClusterOptions::default()
    };
    let cluster = LocalCluster::open(dir, clock, options).await.unwrap();
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
    (cluster, format!("postgres://meridian@{addr}/meridian"))
}

/// The consistency conditions hold through `url`.
async fn consistent(url: &str, when: &str) {
    let client = Client::connect(url).await.unwrap();
    for c in check::check(&client).await.unwrap() {
        assert!(c.ok(), "{when}: {c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_run_check() {
    let dir = tempfile::tempdir().unwrap();
    let (_cluster, url) = serve(dir.path()).await;
    let warehouses = 2;

    let t = Instant::now();
    load::load(&url, warehouses, 4, Scale::TINY, Layout::ByWarehouse)
        .await
        .unwrap();
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
    let conditions = check::check_fresh(&client, Scale::TINY).await.unwrap();
    assert_eq!(conditions.len(), 12);
    for c in conditions {
        assert!(c.ok(), "after load: {c:?}");
    }
    // Every warehouse-keyed table: one range per warehouse, warehouse w's
    // in the w-th group.
    for table in placement::BY_WAREHOUSE {
        let rows = client
            .query(&*format!("SHOW RANGES FROM TABLE {table}"), &[])
            .await
            .unwrap();
        let groups: Vec<i64> = rows.iter().map(|r| r.get("group_id")).collect();
        assert_eq!(groups, [1, 2], "{table}");
    }

    let delivery_log = dir.path().join("deliveries.txt");
    let report = driver::run(&RunOptions {
        url: url.clone(),
        warehouses,
        connections: 4,
        duration: Duration::from_secs(4),
        ramp_up: Duration::ZERO,
        delivery_log: Some(delivery_log.clone()),
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
    // Every queued Delivery ran before the report.
    let queued = report.kinds[Kind::Delivery.index()].count;
    assert!(queued > 0, "no Delivery queued");
    assert_eq!(report.deferred.done, queued);
    assert_eq!(report.deferred.latencies.len() as u64, queued);
    // And each has its line in the result file, with every district.
    let log = std::fs::read_to_string(&delivery_log).unwrap();
    assert_eq!(log.lines().count() as u64, queued, "{log}");
    for line in log.lines() {
        assert!(line.starts_with("queued="), "{line}");
        for d in 1..=10 {
            assert!(line.contains(&format!(" d{d}=")), "{line}");
        }
    }
    // 15% of Payments pay a remote customer, whose warehouse is in the
    // other group: hundreds of transactions make none vanishingly unlikely.
    assert_eq!(report.warehouse_groups.as_deref(), Some(&[1, 2][..]));
    let cross = report.cross_group().unwrap();
    assert!(cross > 0, "no cross-group transaction");
    assert!(cross <= report.remote());

    for c in check::check(&client).await.unwrap() {
        assert!(c.ok(), "after run: {c:?}");
    }

    // The checks can fail: break the data in five places and see exactly
    // the conditions those break fire.
    for sql in [
        "UPDATE warehouse SET w_ytd = w_ytd + 1 WHERE w_id = 1", // 1, 8
        "UPDATE district SET d_ytd = d_ytd + 1 WHERE d_w_id = 2 AND d_id = 3", // 1, 9
        "UPDATE customer SET c_balance = c_balance + 1 \
         WHERE c_w_id = 1 AND c_d_id = 1 AND c_id = 1", // 10, 12
        "UPDATE orders SET o_carrier_id = NULL WHERE o_w_id = 1 AND o_d_id = 1 AND o_id = 1", // 5, 7
        "DELETE FROM order_line \
         WHERE ol_w_id = 2 AND ol_d_id = 1 AND ol_o_id = 1 AND ol_number = 1", // 4, 6
    ] {
        assert_eq!(client.execute(sql, &[]).await.unwrap(), 1, "{sql}");
    }
    let failed: Vec<u32> = check::check(&client)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| !c.ok())
        .map(|c| c.number)
        .collect();
    assert_eq!(failed, [1, 4, 5, 6, 7, 8, 9, 10, 12]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checks_hold_after_a_run_during_which_a_node_died_and_came_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, url) = serve(dir.path()).await;
    let warehouses = 1;
    load::load(&url, warehouses, 4, Scale::TINY, Layout::Default)
        .await
        .unwrap();
    consistent(&url, "after load").await;

    // Node 1 serves SQL; the victim is another node leading some group.
    let victim = (1..=3u64)
        .filter_map(|g| cluster.leader_of(g))
        .find(|&n| n != 1)
        .unwrap_or(2);
    let options = RunOptions {
        url: url.clone(),
        warehouses,
        connections: 4,
        duration: Duration::from_secs(8),
        ramp_up: Duration::from_secs(1),
        delivery_log: None,
        mode: Mode::Throughput,
        scale: Scale::TINY,
        progress: None,
    };
    let run = tokio::spawn(async move { driver::run(&options).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.stop(victim);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start(victim).await.unwrap();
    let report = run.await.unwrap().unwrap();
    eprintln!("{}", report.render());
    // Measured after the ramp-up, for the whole duration.
    assert!(
        report.elapsed >= Duration::from_secs(8),
        "{:?}",
        report.elapsed
    );
    let no = &report.kinds[Kind::NewOrder.index()];
    assert!(no.count - no.rolled_back > 0, "no New-Order committed");
    consistent(&url, "after a run with a node stopped and restarted").await;
}
