//! The client against a running Meridian: a three-replica cluster in this
//! process, served on a loopback port by the PostgreSQL front end.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meridian_client::{Client, Config, Error, Pool, SimpleQueryMessage, SqlState};
use meridian_server::clock::SystemClock;
use meridian_server::cluster::{LocalCluster, LocalClusterOptions};

/// A running Meridian; stopped when dropped.
struct Meridian {
    url: String,
    _cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

impl Meridian {
    async fn start() -> Meridian {
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
        let config = meridian_pg::PgConfig {
            password: None,
            user: "meridian".into(),
            database: "meridian".into(),
            server_version: "15.0 (Meridian)".into(),
        };
        tokio::spawn(meridian_pg::serve(
            listener,
            cluster.engine(1),
            config,
            std::future::pending::<()>(),
        ));
        Meridian {
            url: format!("postgres://meridian@{addr}/meridian"),
            _cluster: cluster,
            _dir: dir,
        }
    }

    fn config(&self) -> Config {
        Config::new(&self.url).unwrap()
    }

    async fn client(&self) -> Client {
        Client::connect(&self.url).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_parameters_rows_and_prepared_statements() {
    let db = Meridian::start().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             score DOUBLE PRECISION, active BOOLEAN NOT NULL, blob BYTEA, small INT)",
        )
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO things (id, name, score, active, blob, small) VALUES ($1, $2, $3, $4, $5, $6)")
        .await
        .unwrap();
    for id in 1..=3i64 {
        let name = format!("thing {id}");
        let score = (id % 2 == 0).then_some(id as f64 * 1.5);
        let blob: Option<Vec<u8>> = Some(vec![id as u8, 0, 255]);
        let n = client
            .execute(
                &insert,
                &[&id, &name, &score, &(id != 2), &blob, &(id as i32 * 10)],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    let rows = client
        .query(
            "SELECT id, name, score, active, blob, small FROM things WHERE id >= $1 ORDER BY id",
            &[&2i64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let id: i64 = rows[0].get("id");
    let name: String = rows[0].get("name");
    let score: Option<f64> = rows[0].get("score");
    let active: bool = rows[0].get("active");
    let blob: Vec<u8> = rows[0].get("blob");
    let small: i32 = rows[0].get("small");
    assert_eq!(
        (id, name.as_str(), score, active, small),
        (2, "thing 2", Some(3.0), false, 20)
    );
    assert_eq!(blob, vec![2, 0, 255]);
    assert_eq!(rows[1].get::<_, Option<f64>>("score"), None);

    let lookup = client
        .prepare("SELECT name FROM things WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(lookup.params().len(), 1);
    let one = client.query_one(&lookup, &[&1i64]).await.unwrap();
    assert_eq!(one.get::<_, &str>(0), "thing 1");
    assert!(client
        .query_opt(&lookup, &[&99i64])
        .await
        .unwrap()
        .is_none());
    // A parameter of the wrong type fails on the client, as a plain error.
    let err = client.query_one(&lookup, &[&"one"]).await.unwrap_err();
    assert!(
        matches!(err, Error::Postgres(_)) && err.code().is_none(),
        "{err:?}"
    );

    // Errors carry their SQLSTATE.
    let err = client
        .execute(
            &insert,
            &[&1i64, &"dup", &None::<f64>, &true, &None::<Vec<u8>>, &0i32],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err:?}");
    assert!(!err.is_retryable());
    let err = client
        .query("SELECT nope FROM things", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_COLUMN), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_abort_and_fail_without_retry() {
    let db = Meridian::start().await;
    let mut client = db.client().await;
    client
        .batch_execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await
        .unwrap();

    // Commits, and returns the closure's value.
    let n = client
        .transaction(|tx| {
            Box::pin(async move {
                tx.execute("INSERT INTO kv VALUES ($1, $2)", &[&1i64, &"a"])
                    .await?;
                tx.execute("INSERT INTO kv VALUES ($1, $2)", &[&2i64, &"b"])
                    .await?;
                let row = tx.query_one("SELECT count(*) FROM kv", &[]).await?;
                Ok(row.get::<_, i64>(0))
            })
        })
        .await
        .unwrap();
    assert_eq!(n, 2);

    // A unique violation is returned at once, and the transaction's other
    // writes are rolled back.
    let calls = AtomicU32::new(0);
    let err = client
        .transaction(|tx| {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tx.execute("INSERT INTO kv VALUES (3, 'c')", &[]).await?;
                tx.execute("INSERT INTO kv VALUES (1, 'again')", &[])
                    .await?;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Postgres(_)), "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // An application error aborts without a retry.
    let err = client
        .transaction(|tx| {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tx.execute("INSERT INTO kv VALUES (4, 'd')", &[]).await?;
                Err::<(), _>(Error::abort("changed my mind"))
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // An ignored failure is not reported as a commit.
    let err = client
        .transaction(|tx| {
            Box::pin(async move {
                tx.execute("INSERT INTO kv VALUES (5, 'e')", &[]).await?;
                let _ = tx.execute("INSERT INTO kv VALUES (2, 'dup')", &[]).await;
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RolledBack { code, .. } if *code == SqlState::UNIQUE_VIOLATION),
        "{err:?}"
    );

    let keys: Vec<i64> = client
        .query("SELECT k FROM kv ORDER BY k", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(keys, vec![1, 2]);
    // The connection is usable after all that, outside any transaction.
    client
        .execute("INSERT INTO kv VALUES (6, 'f')", &[])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_reuses_connections_within_its_bound() {
    let db = Meridian::start().await;
    let pool = Pool::new(
        db.config()
            .pool_size(2)
            .pool_timeout(Some(Duration::from_millis(300))),
    );
    assert_eq!(pool.status().size, 0);

    // A session setting survives the trip back to the pool: the same
    // connection is handed out again.
    let first = pool.get().await.unwrap();
    first
        .batch_execute("SET application_name = 'pooled'")
        .await
        .unwrap();
    drop(first);
    let again = pool.get().await.unwrap();
    let shown = again.simple_query("SHOW application_name").await.unwrap();
    let value = shown.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("pooled"));
    assert_eq!(pool.status().size, 1);

    // At most two at once; a third waits, then times out.
    let second = pool.get().await.unwrap();
    assert_eq!(pool.status().size, 2);
    assert_eq!(pool.status().available, 0);
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, Error::PoolTimeout), "{err:?}");

    // A waiter gets the connection returned by another.
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let client = pool.get().await.unwrap();
            client
                .query_one("SELECT 1", &[])
                .await
                .unwrap()
                .get::<_, i32>(0)
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(second);
    assert_eq!(waiter.await.unwrap(), 1);
    drop(again);
    assert_eq!(pool.status().size, 2);
    assert_eq!(pool.status().available, 2);

    // Transactions on the pool, run from spawned tasks.
    pool.get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE hits (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
        .await
        .unwrap();
    pool.get()
        .await
        .unwrap()
        .execute("INSERT INTO hits VALUES (1, 0)", &[])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.transaction(|tx| {
                    Box::pin(async move {
                        tx.execute("UPDATE hits SET n = n + 1 WHERE id = 1", &[])
                            .await?;
                        Ok(())
                    })
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let n: i64 = pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT n FROM hits WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
    assert!(pool.status().size <= 2);
}

/// Sets up `accounts` with two rows of 1000.
async fn accounts(client: &Client) {
    client
        .batch_execute("CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)")
        .await
        .unwrap();
    client
        .execute("INSERT INTO accounts VALUES (1, 1000), (2, 1000)", &[])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_retry_serialization_failures() {
    let db = Meridian::start().await;
    accounts(&db.client().await).await;
    let pool = Pool::new(
        db.config()
            .pool_size(6)
            .max_attempts(100)
            .base_backoff(Duration::from_millis(2))
            .max_backoff(Duration::from_millis(100)),
    );
    let attempts = Arc::new(AtomicU32::new(0));
    const TASKS: i64 = 6;
    const TRANSFERS: i64 = 8;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let pool = pool.clone();
            let attempts = attempts.clone();
            tokio::spawn(async move {
                for i in 0..TRANSFERS {
                    // Alternate directions, so transactions take the two
                    // rows' locks in opposite orders.
                    let (from, to) = if (task + i) % 2 == 0 {
                        (1i64, 2i64)
                    } else {
                        (2, 1)
                    };
                    let amount = task + 1;
                    pool.transaction(|tx| {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        Box::pin(async move {
                            let row = tx
                                .query_one("SELECT balance FROM accounts WHERE id = $1", &[&from])
                                .await?;
                            let balance: i64 = row.get(0);
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            tx.execute(
                                "UPDATE accounts SET balance = $1 WHERE id = $2",
                                &[&(balance - amount), &from],
                            )
                            .await?;
                            tx.execute(
                                "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
                                &[&amount, &to],
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let client = db.client().await;
    let total: i64 = client
        .query("SELECT balance FROM accounts", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, i64>(0))
        .sum();
    assert_eq!(total, 2000, "money was created or destroyed");
    let commits = (TASKS * TRANSFERS) as u32;
    let attempts = attempts.load(Ordering::SeqCst);
    eprintln!("{attempts} attempts for {commits} commits");
    assert!(
        attempts > commits,
        "expected some retries: {attempts} attempts for {commits} commits"
    );
}

/// Runs a transfer on `client` that is wounded by an older transaction on
/// its first attempt, with at most `max_attempts` attempts. Returns the
/// outcome and the closure's calls.
async fn wounded_transfer(db: &Meridian, max_attempts: u32) -> (Result<(), Error>, u32) {
    let mut client = Client::connect_with(db.config().max_attempts(max_attempts))
        .await
        .unwrap();
    let older = db.client().await;
    // The older transaction starts first (its first statement fixes its
    // age).
    older.batch_execute("BEGIN").await.unwrap();
    older
        .execute("UPDATE accounts SET balance = balance WHERE id = 2", &[])
        .await
        .unwrap();

    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel::<()>();
    let locked_tx = std::sync::Mutex::new(Some(locked_tx));
    let older_task = tokio::spawn(async move {
        // Once the younger one holds row 1, take it: wound-wait aborts the
        // younger transaction.
        locked_rx.await.unwrap();
        older
            .execute(
                "UPDATE accounts SET balance = balance - 1 WHERE id = 1",
                &[],
            )
            .await
            .unwrap();
        older
            .execute(
                "UPDATE accounts SET balance = balance + 1 WHERE id = 2",
                &[],
            )
            .await
            .unwrap();
        older.batch_execute("COMMIT").await.unwrap();
    });

    let calls = AtomicU32::new(0);
    let result = client
        .transaction(|tx| {
            calls.fetch_add(1, Ordering::SeqCst);
            let locked = locked_tx.lock().unwrap().take();
            Box::pin(async move {
                tx.execute(
                    "UPDATE accounts SET balance = balance - 5 WHERE id = 1",
                    &[],
                )
                .await?;
                if let Some(locked) = locked {
                    locked.send(()).unwrap();
                    // Let the older transaction wound this one.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                tx.execute(
                    "UPDATE accounts SET balance = balance + 5 WHERE id = 2",
                    &[],
                )
                .await?;
                Ok(())
            })
        })
        .await;
    older_task.await.unwrap();
    (result, calls.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wounded_transaction_is_retried_up_to_the_limit() {
    let db = Meridian::start().await;
    let client = db.client().await;
    accounts(&client).await;

    // With one attempt allowed, the serialization failure is returned.
    let (result, calls) = wounded_transfer(&db, 1).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Retryable(_)), "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    assert_eq!(calls, 1);
    let balances: Vec<i64> = client
        .query("SELECT balance FROM accounts ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        balances,
        vec![999, 1001],
        "only the older transaction committed"
    );

    // With two, the second attempt commits.
    let (result, calls) = wounded_transfer(&db, 2).await;
    result.unwrap();
    assert_eq!(calls, 2);
    let balances: Vec<i64> = client
        .query("SELECT balance FROM accounts ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(balances, vec![993, 1007]);
}
