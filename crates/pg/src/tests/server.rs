//! A loopback server over the scripted backend.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::script::{Counters, Script};
use crate::conn::{self, Shared};
use crate::PgConfig;

/// A running test server; stops when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Counters of its backends.
    pub counters: Arc<Counters>,
    /// The accept loop.
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts a server with `config`.
    pub async fn start(config: PgConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::new(config));
        let counters = Arc::new(Counters::default());
        let backend_counters = counters.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let backend = Script::new(backend_counters.clone());
                tokio::spawn(conn::run(stream, backend, shared.clone()));
            }
        });
        TestServer {
            addr,
            counters,
            task,
        }
    }

    /// Starts a server with the default (trust) configuration.
    pub async fn trust() -> TestServer {
        Self::start(PgConfig::default()).await
    }

    /// A tokio-postgres connection string for `user` / `password`.
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

    /// Connects with tokio-postgres (trust).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.conn_str("meridian", None), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        client
    }
}
