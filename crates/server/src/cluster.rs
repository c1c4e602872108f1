//! [`LocalCluster`]: several nodes in one process over a [`LocalNetwork`],
//! each with its own RocksDB data directory: what `meridian demo` runs (three
//! replicas of every group) and what the server's failover tests drive.
//! Nothing is simulated: the nodes run the same drivers, queues, checks and
//! synced writes as separate processes do; only the bytes skip the socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_paxos::NodeId;
use meridian_storage::{
    Durability, Engine, KeyRange, RocksEngine, RocksOptions, ScanDirection, ScanIter, Space,
    WriteBatch,
};
use meridian_truetime::{ClockSource, TrueTime};

use crate::clock::SystemClock;
use crate::group::{ReplicationOptions, Storage};
use crate::local::{OffExecutor, TokioSleeper};
use crate::net::{LocalNetwork, NodeApi};
use crate::node::{Node, NodeConfig, DATA_GROUP};
use crate::route::ClusterEngine;

/// How a local cluster runs.
#[derive(Clone, Debug)]
pub struct LocalClusterOptions {
    /// How many nodes.
    pub nodes: usize,
    /// How many groups the keyspace is cut into when the cluster is
    /// founded ([`crate::node::initial_placement`]).
    pub groups: u32,
    /// How many replicas each group gets, on distinct nodes (0: three, or
    /// every node of a smaller cluster; see
    /// [`crate::node::founding_voters`]).
    pub replicas: u32,
    /// Replica timers and limits.
    pub replication: ReplicationOptions,
    /// RocksDB settings.
    pub rocks: RocksOptions,
    /// `Sync` (every Paxos persist is fsynced), or `Buffered` to measure
    /// what fsync costs: then a crash of the machine may lose acknowledged
    /// data, so never for data anyone keeps.
    pub durability: Durability,
}

impl Default for LocalClusterOptions {
    fn default() -> Self {
        LocalClusterOptions {
            nodes: 3,
            groups: 1,
            replicas: 0,
            replication: ReplicationOptions::fast(),
            rocks: RocksOptions::default(),
            durability: Durability::Sync,
        }
    }
}

/// Storage whose synced writes are written without fsync
/// ([`LocalClusterOptions::durability`] `Buffered`).
struct Unsynced<E>(E);

impl<E: Engine> Engine for Unsynced<E> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(space, key)
    }

    fn scan(&self, space: Space, range: &KeyRange, direction: ScanDirection) -> ScanIter<'_> {
        self.0.scan(space, range, direction)
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<()> {
        self.0.write(batch, Durability::Buffered)
    }

    fn flush(&self) -> Result<()> {
        self.0.flush()
    }
}

/// Nodes of one process, their data under one directory (`node-<id>`).
pub struct LocalCluster {
    /// Their network.
    network: Arc<LocalNetwork>,
    /// The nodes (None while stopped), node `i + 1` at index `i`.
    nodes: Vec<Option<Arc<Node>>>,
    /// Where the data lives.
    dir: PathBuf,
    /// TrueTime of every node (they share the process's clock).
    tt: TrueTime,
    /// Settings.
    options: LocalClusterOptions,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("dir", &self.dir)
            .field("nodes", &self.options.nodes)
            .finish_non_exhaustive()
    }
}

fn address(id: NodeId) -> String {
    format!("node-{id}")
}

impl LocalCluster {
    /// Opens (and, the first time, founds) a cluster of `options.nodes`
    /// nodes with data under `dir`, on `clock`.
    pub async fn open(
        dir: impl AsRef<Path>,
        clock: Arc<SystemClock>,
        options: LocalClusterOptions,
    ) -> Result<LocalCluster> {
        let dir = dir.as_ref().to_path_buf();
        if dir.join("CURRENT").exists() {
            return Err(Error::InvalidInput(format!(
                "{} holds a single-node database of an earlier Meridian; \
                 choose another data directory (or remove it)",
                dir.display()
            )));
        }
        let source: Arc<dyn ClockSource> = clock;
        let mut cluster = LocalCluster {
            network: LocalNetwork::new(),
            nodes: vec![None; options.nodes],
            dir,
            tt: TrueTime::new(source),
            options,
        };
        for id in 1..=cluster.options.nodes as NodeId {
            cluster.start(id).await?;
        }
        let first = cluster.node(1);
        if first.cluster() == 0 {
            first
                .init(meridian_proto::v1::InitRequest {
                    groups: cluster.options.groups,
                    replicas: cluster.options.replicas,
                })
                .await?;
        }
        Ok(cluster)
    }

    /// Starts (or restarts) node `id` from its data directory. A node just
    /// stopped may take a moment to let go of its storage (its tasks end
    /// asynchronously): the open is retried for a few seconds.
    pub async fn start(&mut self, id: NodeId) -> Result<Arc<Node>> {
        let index = (id as usize)
            .checked_sub(1)
            .filter(|&i| i < self.nodes.len())
            .ok_or_else(|| Error::InvalidInput(format!("no node {id} in this cluster")))?;
        let path = self.dir.join(format!("node-{id}"));
        let mut attempts = 0;
        let rocks = loop {
            match RocksEngine::open(&path, self.options.rocks.clone()) {
                Ok(rocks) => break rocks,
                Err(Error::Io(why)) if why.contains("lock") && attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => return Err(err),
            }
        };
        let storage: Storage = match self.options.durability {
            Durability::Sync => Arc::new(OffExecutor(rocks)),
            Durability::Buffered => Arc::new(Unsynced(rocks)),
        };
        let config = NodeConfig {
            id,
            address: address(id),
            join: (1..=self.options.nodes as NodeId).map(address).collect(),
            replication: self.options.replication.clone(),
        };
        let node = Node::open(
            config,
            storage,
            self.tt.clone(),
            Arc::new(TokioSleeper),
            Arc::new(self.network.connector(&address(id))),
        )?;
        self.network.register(&address(id), &node);
        self.nodes[index] = Some(node.clone());
        Ok(node)
    }

    /// Starts a new, empty node (the next id) and adds it to the running
    /// cluster through node `via` (`AddNode`); returns its id.
    pub async fn add_node(&mut self, via: NodeId) -> Result<NodeId> {
        let id = self.nodes.len() as NodeId + 1;
        self.nodes.push(None);
        self.options.nodes += 1;
        self.start(id).await?;
        self.node(via)
            .add_node(meridian_proto::v1::AddNodeRequest {
                address: address(id),
            })
            .await?;
        Ok(id)
    }

    /// Stops node `id` as a crash would: its replicas stop at once, and
    /// what they had not persisted is lost.
    pub fn stop(&mut self, id: NodeId) {
        if let Some(node) = self.nodes.get_mut(id as usize - 1).and_then(Option::take) {
            node.stop();
        }
    }

    /// Cuts node `id` off from every other node (both ways).
    pub fn isolate(&self, id: NodeId) {
        self.network.isolate(&address(id));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.network.heal();
    }

    /// Node `id` (panics if it is stopped: a test bug).
    pub fn node(&self, id: NodeId) -> Arc<Node> {
        self.nodes[id as usize - 1]
            .clone()
            .unwrap_or_else(|| panic!("node {id} is stopped"))
    }

    /// The ids of the running nodes.
    pub fn running(&self) -> Vec<NodeId> {
        (1..=self.nodes.len() as NodeId)
            .filter(|&id| self.nodes[id as usize - 1].is_some())
            .collect()
    }

    /// The transaction engine of node `id`'s SQL sessions.
    pub fn engine(&self, id: NodeId) -> ClusterEngine {
        self.node(id).engine()
    }

    /// The running node serving `group` now (leading it with a lease), if
    /// any.
    pub fn leader_of(&self, group: u64) -> Option<NodeId> {
        self.running().into_iter().find(|&id| {
            self.node(id)
                .group(group)
                .is_some_and(|g| g.status().serving)
        })
    }

    /// Waits until every group is served by some running node; returns
    /// the node serving the first group.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let deadline = tokio::time::Instant::now() + timeout;
        let groups = u64::from(self.options.groups.max(1));
        loop {
            if let Some(first) = self.leader_of(DATA_GROUP) {
                if (DATA_GROUP + 1..DATA_GROUP + groups).all(|g| self.leader_of(g).is_some()) {
                    return Ok(first);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable(format!("no leader within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The status of every running node.
    pub async fn status(&self) -> Vec<meridian_proto::v1::StatusReply> {
        let mut out = Vec::new();
        for id in self.running() {
            if let Ok(status) = self.node(id).status().await {
                out.push(status);
            }
        }
        out
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for id in self.running() {
            self.stop(id);
        }
    }
}
