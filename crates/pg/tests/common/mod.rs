//! A Meridian PostgreSQL endpoint in-process: `serve` on 127.0.0.1:0 over
//! the local engine on memory storage (tokio time, so lock waits really
//! wait).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use meridian_pg::{serve, PgConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server; shut down when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Fires the shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The serve task.
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server with `config` over a fresh in-memory engine.
    pub async fn start(config: PgConfig) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let engine = meridian_txn::testing::memory_engine(Duration::from_secs(60));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listener, engine, config, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts a server with trust authentication.
    pub async fn trust() -> Server {
        Self::start(PgConfig::default()).await
    }

    /// A libpq-style connection string.
    pub fn conn_str(&self, user: &str, password: Option<&str>) -> String {
        let mut s = format!(
            "host=127.0.0.1 port={} user={user} dbname=meridian connect_timeout=10",
            self.addr.port()
        );
        if let Some(p) = password {
            s.push_str(&format!(" password={p}"));
        }
        s
    }

    /// A tokio-postgres client (trust).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.conn_str("meridian", None), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
