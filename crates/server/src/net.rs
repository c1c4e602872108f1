//! How nodes reach each other: the [`NodeApi`] every node serves, the
//! [`Connector`] that turns an address into a handle on a peer's API, and
//! the per-peer queues that batch Paxos messages.
//!
//! The same API runs over two transports. Over gRPC ([`crate::grpc`]) a
//! peer is a tonic client and the service forwards to the node. Inside one
//! process ([`LocalNetwork`], the demo and tests) a peer is the other
//! [`Node`] itself, called directly; messages still go
//! through the same queues, batching and checks, only without bytes on a
//! socket in between (Paxos messages do travel encoded, so the receiving
//! checks are the same).
//!
//! **Batching.** Each peer has one bounded queue and one sender task: the
//! task takes every message queued (up to [`MAX_BATCH`]) and delivers them
//! in one call. When the queue is full a message is dropped (Paxos
//! retransmits); when a delivery fails the batch is dropped and the task
//! pauses briefly, so a dead peer costs little.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_paxos::NodeId;
use meridian_proto::v1;
use tokio::sync::mpsc;

use crate::node::Node;

/// A boxed future of a node API call.
pub type ApiFuture<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

/// The service a node offers its peers (and tools such as `meridian init`).
pub trait NodeApi: Send + Sync + 'static {
    /// Paxos messages for the replicas on this node.
    fn deliver(&self, batch: v1::PaxosBatch) -> ApiFuture<()>;
    /// The node's identity and address book.
    fn hello(&self, request: v1::HelloRequest) -> ApiFuture<v1::HelloReply>;
    /// Founds a new cluster from this node and the nodes it can reach.
    fn init(&self, request: v1::InitRequest) -> ApiFuture<v1::InitReply>;
    /// Makes this node a founding member of a cluster.
    fn bootstrap(&self, request: v1::BootstrapRequest) -> ApiFuture<()>;
    /// One operation of a transaction at this node's leader replica.
    fn txn(&self, request: v1::TxnRequest) -> ApiFuture<v1::TxnReply>;
    /// The node's view of its groups.
    fn status(&self) -> ApiFuture<v1::StatusReply>;
    /// Starts an empty replica of a group here, to be added to its voters.
    fn host_replica(&self, request: v1::ReplicaRequest) -> ApiFuture<()>;
    /// Stops and forgets this node's replica of a group that no longer
    /// names it a voter.
    fn drop_replica(&self, request: v1::ReplicaRequest) -> ApiFuture<()>;
    /// Moves a group's replica between two nodes (run by this node).
    fn move_replica(&self, request: v1::MoveReplicaRequest) -> ApiFuture<v1::MoveReplicaReply>;
    /// Adds a node to this node's cluster (run by this node).
    fn add_node(&self, request: v1::AddNodeRequest) -> ApiFuture<v1::AddNodeReply>;
    /// Adds a member to this node's address book.
    fn add_peer(&self, request: v1::AddPeerRequest) -> ApiFuture<()>;
}

/// Turns a peer's address into a handle on its API.
pub trait Connector: Send + Sync + 'static {
    /// A handle on the node at `address` (connecting lazily: a node that is
    /// down fails the calls, not this).
    fn connect(&self, address: &str) -> Result<Arc<dyn NodeApi>>;
}

/// At most this many Paxos messages go in one delivery.
pub const MAX_BATCH: usize = 512;
/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;
/// The pause after a failed delivery.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The outbound Paxos queue of one peer.
#[derive(Clone, Debug)]
pub struct PeerQueue {
    /// Encoded messages for the peer.
    queue: mpsc::Sender<Vec<u8>>,
}

impl PeerQueue {
    /// Starts the sender task delivering to `api` as node `from` of `cluster`.
    pub fn start(api: Arc<dyn NodeApi>, cluster: u64, from: NodeId, to: NodeId) -> Self {
        let (queue, mut messages) = mpsc::channel::<Vec<u8>>(PEER_QUEUE);
        tokio::spawn(async move {
            while let Some(first) = messages.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match messages.try_recv() {
                        Ok(message) => batch.push(message),
                        Err(_) => break,
                    }
                }
                let delivery = v1::PaxosBatch {
                    cluster,
                    from,
                    messages: batch,
                };
                if let Err(err) = api.deliver(delivery).await {
                    tracing::debug!(to, %err, "paxos delivery failed");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    // What queued meanwhile is stale retransmission fodder.
                    while messages.try_recv().is_ok() {}
                }
            }
        });
        PeerQueue { queue }
    }

    /// Queues an encoded message (dropped if the queue is full).
    pub fn send(&self, message: Vec<u8>) {
        let _ = self.queue.try_send(message);
    }
}

/// Nodes of one process reaching each other by name: the demo's network.
/// Tests can cut links ([`LocalNetwork::isolate`]) to partition it.
#[derive(Default)]
pub struct LocalNetwork {
    /// The nodes, by address.
    nodes: RwLock<HashMap<String, Weak<Node>>>,
    /// Cut links, as (from, to) addresses: calls over them fail.
    cut: RwLock<HashSet<(String, String)>>,
}

impl LocalNetwork {
    /// An empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(LocalNetwork::default())
    }

    /// Makes `node` reachable at `address` (replacing a previous node
    /// there, e.g. after a restart).
    pub fn register(&self, address: &str, node: &Arc<Node>) {
        self.nodes
            .write()
            .expect("network poisoned")
            .insert(address.to_string(), Arc::downgrade(node));
    }

    /// The connector node `from` uses: its calls go over `from`'s links.
    pub fn connector(self: &Arc<Self>, from: &str) -> LocalConnector {
        LocalConnector {
            network: self.clone(),
            from: from.to_string(),
        }
    }

    /// Cuts every link between `address` and the other nodes, both ways.
    pub fn isolate(&self, address: &str) {
        let others: Vec<String> = self
            .nodes
            .read()
            .expect("network poisoned")
            .keys()
            .filter(|a| *a != address)
            .cloned()
            .collect();
        let mut cut = self.cut.write().expect("network poisoned");
        for other in others {
            cut.insert((address.to_string(), other.clone()));
            cut.insert((other, address.to_string()));
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.write().expect("network poisoned").clear();
    }

    fn lookup(&self, from: &str, address: &str) -> Result<Arc<Node>> {
        if self
            .cut
            .read()
            .expect("network poisoned")
            .contains(&(from.to_string(), address.to_string()))
        {
            return Err(Error::Unavailable(format!(
                "the link from {from} to {address} is cut"
            )));
        }
        self.nodes
            .read()
            .expect("network poisoned")
            .get(address)
            .and_then(Weak::upgrade)
            .ok_or_else(|| Error::Unavailable(format!("node at {address} is down")))
    }
}

/// How one node of a [`LocalNetwork`] reaches the others.
pub struct LocalConnector {
    /// The network.
    network: Arc<LocalNetwork>,
    /// The connecting node's address.
    from: String,
}

impl Connector for LocalConnector {
    fn connect(&self, address: &str) -> Result<Arc<dyn NodeApi>> {
        Ok(Arc::new(LocalPeer {
            network: self.network.clone(),
            from: self.from.clone(),
            address: address.to_string(),
        }))
    }
}

/// A peer in the same process, looked up at every call.
struct LocalPeer {
    /// The network.
    network: Arc<LocalNetwork>,
    /// The calling node's name.
    from: String,
    /// The peer's name.
    address: String,
}

impl LocalPeer {
    fn call<T: Send + 'static>(&self, f: impl FnOnce(&Node) -> ApiFuture<T>) -> ApiFuture<T> {
        match self.network.lookup(&self.from, &self.address) {
            Ok(node) => f(&node),
            Err(err) => Box::pin(std::future::ready(Err(err))),
        }
    }
}

impl NodeApi for LocalPeer {
    fn deliver(&self, batch: v1::PaxosBatch) -> ApiFuture<()> {
        self.call(|node| node.deliver(batch))
    }
    fn hello(&self, request: v1::HelloRequest) -> ApiFuture<v1::HelloReply> {
        self.call(|node| node.hello(request))
    }
    fn init(&self, request: v1::InitRequest) -> ApiFuture<v1::InitReply> {
        self.call(|node| node.init(request))
    }
    fn bootstrap(&self, request: v1::BootstrapRequest) -> ApiFuture<()> {
        self.call(|node| node.bootstrap(request))
    }
    fn txn(&self, request: v1::TxnRequest) -> ApiFuture<v1::TxnReply> {
        self.call(|node| node.txn(request))
    }
    fn status(&self) -> ApiFuture<v1::StatusReply> {
        self.call(|node| node.status())
    }
    fn host_replica(&self, request: v1::ReplicaRequest) -> ApiFuture<()> {
        self.call(|node| node.host_replica(request))
    }
    fn drop_replica(&self, request: v1::ReplicaRequest) -> ApiFuture<()> {
        self.call(|node| node.drop_replica(request))
    }
    fn move_replica(&self, request: v1::MoveReplicaRequest) -> ApiFuture<v1::MoveReplicaReply> {
        self.call(|node| node.move_replica(request))
    }
    fn add_node(&self, request: v1::AddNodeRequest) -> ApiFuture<v1::AddNodeReply> {
        self.call(|node| node.add_node(request))
    }
    fn add_peer(&self, request: v1::AddPeerRequest) -> ApiFuture<()> {
        self.call(|node| node.add_peer(request))
    }
}
