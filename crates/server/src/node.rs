//! A Meridian node: its storage, its replicas, its peers, and the node API
//! it serves ([`NodeApi`]).
//!
//! # Identity and bootstrap
//!
//! A node is started with an id and a list of peers' addresses (`--join`).
//! Its data directory remembers the id (a directory of another node is
//! refused) and, once the cluster exists, the cluster id, the address book
//! and the groups it hosts. A new cluster is founded once: `meridian init`
//! asks one node to `Init`; it calls `Hello` on every address of its join
//! list (each must answer, and none may belong to a cluster already), picks
//! a random cluster id, and sends `Bootstrap` with the members and the
//! first group's membership (every member is a voter) to each member,
//! itself included. A member persists all of it in one synced batch and
//! starts its replica with [`Start::Bootstrap`]; bootstrapping again with
//! the same cluster id is a no-op, so `init` can be retried. A restarted
//! node reads it back and recovers its replicas ([`Start::Recover`]).
//!
//! # Checks on what arrives
//!
//! A Paxos batch from another cluster or from a node missing from the
//! address book is refused as a whole, with a logged reason; each message
//! is then checked again by its replica (`Replica::step`), which refuses
//! stale or impossible ballots and malformed bytes without changing state.
//!
//! # Routing
//!
//! SQL on any node programs against [`ClusterEngine`],
//! which runs each transaction at the group's leader: in this process when
//! the local replica leads, else through the leader's `Txn` API
//! ([`crate::txn_service`]).
//!
//! Left out: changing the address book after init (nodes keep the address
//! they were founded with), adding nodes to a running cluster, and groups
//! beyond the first (sharding).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_paxos::{codec, Envelope, Membership, NodeId, RoleKind};
use meridian_proto::v1;
use meridian_storage::{Durability, Mvcc, Space, WriteBatch};
use meridian_truetime::TrueTime;
use meridian_txn::Sleeper;
use serde::{Deserialize, Serialize};

use crate::clock::{judge_peer_clocks, PeerClock, SystemClock};
use crate::group::{Group, GroupEnv, MonoClock, Outbox, ReplicationOptions, Start, Storage};
use crate::net::{ApiFuture, Connector, NodeApi, PeerQueue};
use crate::route::ClusterEngine;
use crate::txn_service::RemoteTxns;

/// The group that holds all data until sharding splits the keyspace.
pub const DATA_GROUP: u64 = 1;

/// The most voters the founding group gets (the rest of the nodes, if any,
/// hold no replica of it).
pub const MAX_FOUNDING_VOTERS: usize = 7;

/// The node's record in its storage ([`Space::Meta`], key `node`).
const NODE_KEY: &[u8] = b"node";

/// How a node is set up.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id (positive, unique in the cluster).
    pub id: NodeId,
    /// The address peers reach this node at.
    pub address: String,
    /// Peers' addresses to found a cluster with.
    pub join: Vec<String>,
    /// Timers and limits of the replicas.
    pub replication: ReplicationOptions,
}

/// What a node remembers about itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct NodeRecord {
    /// Its id.
    id: NodeId,
    /// Its cluster (0 until bootstrapped).
    cluster: u64,
    /// The address book: every member's id and address.
    peers: Vec<(NodeId, String)>,
    /// The groups it hosts a replica of.
    groups: Vec<u64>,
}

/// A peer as the node knows it.
struct PeerLink {
    /// Its API.
    api: Arc<dyn NodeApi>,
    /// Its outbound Paxos queue.
    queue: PeerQueue,
}

/// A running node. Create with [`Node::open`].
pub struct Node {
    /// This node, for the futures its API returns.
    me: Weak<Node>,
    /// The configuration.
    config: NodeConfig,
    /// Its storage.
    storage: Storage,
    /// The MVCC view of it.
    mvcc: Arc<Mvcc<Storage>>,
    /// TrueTime.
    tt: TrueTime,
    /// How transactions sleep.
    sleeper: Arc<dyn Sleeper>,
    /// The replicas' clock.
    clock: MonoClock,
    /// How to reach peers.
    connector: Arc<dyn Connector>,
    /// What the node remembers (cluster, peers, groups).
    record: RwLock<NodeRecord>,
    /// The peers, by id.
    peers: RwLock<HashMap<NodeId, PeerLink>>,
    /// The replicas, by group.
    groups: RwLock<HashMap<u64, Arc<Group>>>,
    /// Transactions other nodes run at this node's leaders.
    txns: RemoteTxns,
    /// Serializes bootstrap.
    bootstrap_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.config.id)
            .field("address", &self.config.address)
            .finish_non_exhaustive()
    }
}

/// The outbox of a node's replicas: the per-peer queues.
struct NodeOutbox(Weak<Node>);

impl Outbox for NodeOutbox {
    fn send(&self, envelope: Envelope) {
        let Some(node) = self.0.upgrade() else { return };
        let peers = node.peers.read().expect("peers poisoned");
        match peers.get(&envelope.to) {
            Some(peer) => peer.queue.send(codec::encode_message(&envelope)),
            None => tracing::debug!(to = envelope.to, "no address for a replica's peer"),
        }
    }
}

impl Node {
    /// Opens the node over `storage`: checks the data belongs to this node
    /// id, and restarts the replicas of an initialized cluster.
    pub fn open(
        config: NodeConfig,
        storage: Storage,
        tt: TrueTime,
        sleeper: Arc<dyn Sleeper>,
        connector: Arc<dyn Connector>,
    ) -> Result<Arc<Node>> {
        if config.id == 0 {
            return Err(Error::InvalidInput("node id 0 is reserved".into()));
        }
        let record = match storage.get(Space::Meta, NODE_KEY)? {
            Some(bytes) => {
                let record: NodeRecord = postcard::from_bytes(&bytes)
                    .map_err(|e| Error::Corruption(format!("node record: {e}")))?;
                if record.id != config.id {
                    return Err(Error::InvalidInput(format!(
                        "this data directory belongs to node {}, not node {}",
                        record.id, config.id
                    )));
                }
                record
            }
            None => {
                let record = NodeRecord {
                    id: config.id,
                    ..NodeRecord::default()
                };
                write_record(&storage, &record)?;
                record
            }
        };
        let mvcc = Arc::new(Mvcc::new(storage.clone())?);
        let node = Arc::new_cyclic(|me| Node {
            me: me.clone(),
            txns: RemoteTxns::new(),
            config,
            storage,
            mvcc,
            tt,
            sleeper,
            clock: MonoClock::new(),
            connector,
            record: RwLock::new(record.clone()),
            peers: RwLock::new(HashMap::new()),
            groups: RwLock::new(HashMap::new()),
            bootstrap_lock: tokio::sync::Mutex::new(()),
        });
        if record.cluster != 0 {
            node.connect_peers(&record)?;
            for &group in &record.groups {
                node.start_group(group, Start::Recover)?;
            }
            tracing::info!(
                node = node.config.id,
                cluster = format!("{:016x}", record.cluster),
                "restarted"
            );
        }
        node.txns.start_reaper(Arc::downgrade(&node));
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The address peers reach it at.
    pub fn address(&self) -> &str {
        &self.config.address
    }

    /// The cluster id (0 until bootstrapped).
    pub fn cluster(&self) -> u64 {
        self.record.read().expect("record poisoned").cluster
    }

    /// TrueTime as the node sees it.
    pub fn truetime(&self) -> &TrueTime {
        &self.tt
    }

    /// The transaction engine SQL sessions on this node use.
    pub fn engine(self: &Arc<Self>) -> ClusterEngine {
        ClusterEngine::new(self.clone(), DATA_GROUP)
    }

    /// The node's MVCC store (every replica's applied data).
    pub fn mvcc(&self) -> &Arc<Mvcc<Storage>> {
        &self.mvcc
    }

    /// The replica of `group` on this node, if it hosts one.
    pub fn group(&self, group: u64) -> Option<Arc<Group>> {
        self.groups
            .read()
            .expect("groups poisoned")
            .get(&group)
            .cloned()
    }

    /// The API of peer `id`.
    pub fn peer(&self, id: NodeId) -> Option<Arc<dyn NodeApi>> {
        self.peers
            .read()
            .expect("peers poisoned")
            .get(&id)
            .map(|p| p.api.clone())
    }

    /// The running leader transactions of other nodes (for tests).
    pub fn remote_txns(&self) -> &RemoteTxns {
        &self.txns
    }

    /// Measures every peer's clock against this node's (one `Hello` each;
    /// unreachable peers are skipped).
    pub async fn sample_peer_clocks(&self) -> Vec<PeerClock> {
        let peers: Vec<(NodeId, Arc<dyn NodeApi>)> = self
            .peers
            .read()
            .expect("peers poisoned")
            .iter()
            .map(|(id, p)| (*id, p.api.clone()))
            .collect();
        let mut samples = Vec::new();
        for (id, api) in peers {
            let sent = std::time::Instant::now();
            let before = self.tt.now().earliest;
            let Ok(reply) = api.hello(v1::HelloRequest::default()).await else {
                continue;
            };
            let rtt = sent.elapsed();
            let now = self.tt.now();
            // Our reading at the round trip's midpoint.
            let ours = i128::from(before.as_nanos())
                + rtt.as_nanos() as i128 / 2
                + now.width().as_nanos() as i128 / 2;
            let offset = i128::from(reply.now_nanos) - ours;
            samples.push(PeerClock {
                node: id,
                offset: offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
                rtt,
            });
        }
        samples
    }

    /// Stops the node's replicas and forgets its peers and transactions at
    /// once, as a crash would (what was not persisted is lost). The node
    /// answers nothing afterwards.
    pub fn stop(&self) {
        self.groups.write().expect("groups poisoned").clear();
        self.peers.write().expect("peers poisoned").clear();
        self.txns.clear();
        self.record.write().expect("record poisoned").cluster = 0;
    }

    fn arc(&self) -> Arc<Node> {
        self.me
            .upgrade()
            .expect("a node is used only while it lives")
    }

    /// Connects the peers of the address book.
    fn connect_peers(&self, record: &NodeRecord) -> Result<()> {
        let mut peers = self.peers.write().expect("peers poisoned");
        for (id, address) in &record.peers {
            if *id == self.config.id || peers.contains_key(id) {
                continue;
            }
            let api = self.connector.connect(address)?;
            let queue = PeerQueue::start(api.clone(), record.cluster, self.config.id, *id);
            peers.insert(*id, PeerLink { api, queue });
        }
        Ok(())
    }

    /// Starts this node's replica of `group`.
    fn start_group(&self, group: u64, start: Start) -> Result<()> {
        let env = GroupEnv {
            node: self.config.id,
            cluster: self.cluster(),
            storage: self.storage.clone(),
            mvcc: self.mvcc.clone(),
            tt: self.tt.clone(),
            sleeper: self.sleeper.clone(),
            clock: self.clock,
            outbox: Arc::new(NodeOutbox(self.me.clone())),
            options: self.config.replication.clone(),
        };
        let replica = Group::start(env, group, start)?;
        self.groups
            .write()
            .expect("groups poisoned")
            .insert(group, Arc::new(replica));
        Ok(())
    }

    /// Founds a cluster (the `Init` call).
    async fn found_cluster(self: Arc<Self>) -> Result<v1::InitReply> {
        if self.cluster() != 0 {
            return Err(Error::InvalidInput(format!(
                "node {} already belongs to cluster {:016x}",
                self.config.id,
                self.cluster()
            )));
        }
        let mut members = vec![v1::Peer {
            id: self.config.id,
            address: self.config.address.clone(),
        }];
        let mut unreachable = Vec::new();
        for address in &self.config.join {
            if *address == self.config.address {
                continue;
            }
            let reply = match self.connector.connect(address) {
                Ok(api) => {
                    api.hello(v1::HelloRequest {
                        from: self.config.id,
                        address: self.config.address.clone(),
                    })
                    .await
                }
                Err(err) => Err(err),
            };
            match reply {
                Ok(hello) if hello.cluster != 0 => {
                    return Err(Error::InvalidInput(format!(
                        "node {} at {address} already belongs to cluster {:016x}",
                        hello.node_id, hello.cluster
                    )))
                }
                Ok(hello) => members.push(v1::Peer {
                    id: hello.node_id,
                    address: address.clone(),
                }),
                Err(err) => unreachable.push(format!("{address} ({err})")),
            }
        }
        if !unreachable.is_empty() {
            return Err(Error::Unavailable(format!(
                "cannot found the cluster: unreachable: {}",
                unreachable.join(", ")
            )));
        }
        let ids: BTreeSet<NodeId> = members.iter().map(|m| m.id).collect();
        if ids.len() != members.len() {
            return Err(Error::InvalidInput(
                "two nodes of the join list have the same node id".into(),
            ));
        }
        let voters: Vec<NodeId> = ids.iter().copied().take(MAX_FOUNDING_VOTERS).collect();
        let cluster = loop {
            let id: u64 = rand::random();
            if id != 0 {
                break id;
            }
        };
        let request = v1::BootstrapRequest {
            cluster,
            peers: members.clone(),
            groups: vec![v1::GroupSpec {
                id: DATA_GROUP,
                voters,
            }],
        };
        for member in &members {
            let result = if member.id == self.config.id {
                self.bootstrap(request.clone()).await
            } else {
                match self.connector.connect(&member.address) {
                    Ok(api) => api.bootstrap(request.clone()).await,
                    Err(err) => Err(err),
                }
            };
            result.map_err(|err| {
                Error::Unavailable(format!(
                    "bootstrapping node {} at {} failed: {err}; run init again",
                    member.id, member.address
                ))
            })?;
        }
        tracing::info!(
            cluster = format!("{cluster:016x}"),
            members = members.len(),
            "founded a new cluster"
        );
        Ok(v1::InitReply { cluster, members })
    }

    /// Becomes a founding member (the `Bootstrap` call).
    async fn join_cluster(self: Arc<Self>, request: v1::BootstrapRequest) -> Result<()> {
        let _guard = self.bootstrap_lock.lock().await;
        let current = self.cluster();
        if current == request.cluster {
            return Ok(());
        }
        if current != 0 {
            return Err(Error::InvalidInput(format!(
                "node {} already belongs to cluster {current:016x}",
                self.config.id
            )));
        }
        if request.cluster == 0 {
            return Err(Error::InvalidInput("cluster id 0 is reserved".into()));
        }
        if !request.peers.iter().any(|p| p.id == self.config.id) {
            return Err(Error::InvalidInput(format!(
                "node {} is not among the members it is asked to join",
                self.config.id
            )));
        }
        let record = NodeRecord {
            id: self.config.id,
            cluster: request.cluster,
            peers: request
                .peers
                .iter()
                .map(|p| (p.id, p.address.clone()))
                .collect(),
            groups: request
                .groups
                .iter()
                .filter(|g| g.voters.contains(&self.config.id))
                .map(|g| g.id)
                .collect(),
        };
        write_record(&self.storage, &record)?;
        *self.record.write().expect("record poisoned") = record.clone();
        self.connect_peers(&record)?;
        for spec in request
            .groups
            .iter()
            .filter(|g| g.voters.contains(&self.config.id))
        {
            let membership = Membership::new(spec.voters.iter().copied());
            self.start_group(spec.id, Start::Bootstrap(membership))?;
        }
        tracing::info!(
            node = self.config.id,
            cluster = format!("{:016x}", request.cluster),
            "joined a new cluster"
        );
        Ok(())
    }

    /// Takes a batch of Paxos messages from a peer.
    fn take_batch(&self, batch: v1::PaxosBatch) -> Result<()> {
        let cluster = self.cluster();
        if cluster == 0 || batch.cluster != cluster {
            tracing::warn!(
                from = batch.from,
                their_cluster = format!("{:016x}", batch.cluster),
                our_cluster = format!("{cluster:016x}"),
                "refused paxos messages from another cluster"
            );
            return Err(Error::InvalidInput(format!(
                "node {} does not belong to cluster {:016x}",
                self.config.id, batch.cluster
            )));
        }
        if !self
            .peers
            .read()
            .expect("peers poisoned")
            .contains_key(&batch.from)
        {
            tracing::warn!(
                from = batch.from,
                "refused paxos messages from an unknown node"
            );
            return Err(Error::InvalidInput(format!(
                "node {} is not in node {}'s address book",
                batch.from, self.config.id
            )));
        }
        for bytes in batch.messages {
            let envelope = match codec::decode_message(&bytes) {
                Ok(envelope) => envelope,
                Err(why) => {
                    tracing::warn!(from = batch.from, %why, "refused a malformed paxos message");
                    continue;
                }
            };
            if envelope.from != batch.from {
                tracing::warn!(
                    from = batch.from,
                    claims = envelope.from,
                    "refused a paxos message claiming another sender"
                );
                continue;
            }
            match self.group(envelope.group) {
                Some(group) => group.deliver(envelope),
                None => tracing::debug!(
                    group = envelope.group,
                    "message for a group not hosted here"
                ),
            }
        }
        Ok(())
    }

    /// This node's status.
    fn status_now(&self) -> v1::StatusReply {
        let groups = self.groups.read().expect("groups poisoned");
        let mut statuses: Vec<v1::GroupStatus> = groups
            .values()
            .map(|g| {
                let s = g.status();
                let stats = g
                    .leader_engine()
                    .map(|e| e.commit_wait_stats())
                    .unwrap_or_default();
                v1::GroupStatus {
                    group: s.group,
                    role: match s.role {
                        RoleKind::Leader => "leader",
                        RoleKind::Candidate => "candidate",
                        RoleKind::Follower => "follower",
                    }
                    .into(),
                    leader: s.leader.unwrap_or(0),
                    commit: s.commit,
                    applied: s.applied,
                    voters: s.voters,
                    serving: s.serving,
                    safe_ts: s.safe_ts.as_nanos(),
                    commits: stats.commits,
                    commit_wait_nanos: stats.waited.as_nanos() as u64,
                }
            })
            .collect();
        statuses.sort_by_key(|g| g.group);
        v1::StatusReply {
            node_id: self.config.id,
            cluster: self.cluster(),
            groups: statuses,
        }
    }
}

/// Compares the node's clock with its peers' every `interval` and fences
/// `clock` when it disagrees with most of them beyond the bound
/// ([`judge_peer_clocks`]); the node's clock watcher then stops it. Runs
/// while the node lives.
pub async fn watch_peer_clocks(node: Weak<Node>, clock: Arc<SystemClock>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(node) = node.upgrade() else { return };
        let samples = node.sample_peer_clocks().await;
        if let Some(why) = judge_peer_clocks(&samples, clock.epsilon()) {
            clock.fence(why);
            return;
        }
    }
}

fn write_record(storage: &Storage, record: &NodeRecord) -> Result<()> {
    let mut batch = WriteBatch::new();
    batch.put(
        Space::Meta,
        NODE_KEY.to_vec(),
        postcard::to_allocvec(record).expect("node records always encode"),
    );
    storage.write(batch, Durability::Sync)
}

fn ready<T: Send + 'static>(value: Result<T>) -> ApiFuture<T> {
    Box::pin(std::future::ready(value))
}

impl NodeApi for Node {
    fn deliver(&self, batch: v1::PaxosBatch) -> ApiFuture<()> {
        ready(self.take_batch(batch))
    }

    fn hello(&self, _request: v1::HelloRequest) -> ApiFuture<v1::HelloReply> {
        let record = self.record.read().expect("record poisoned");
        let now = self.tt.now();
        let midpoint = now.earliest.saturating_add(now.width() / 2);
        ready(Ok(v1::HelloReply {
            node_id: self.config.id,
            cluster: record.cluster,
            now_nanos: midpoint.as_nanos(),
            peers: record
                .peers
                .iter()
                .map(|(id, address)| v1::Peer {
                    id: *id,
                    address: address.clone(),
                })
                .collect(),
        }))
    }

    fn init(&self) -> ApiFuture<v1::InitReply> {
        Box::pin(self.arc().found_cluster())
    }

    fn bootstrap(&self, request: v1::BootstrapRequest) -> ApiFuture<()> {
        Box::pin(self.arc().join_cluster(request))
    }

    fn txn(&self, request: v1::TxnRequest) -> ApiFuture<v1::TxnReply> {
        let node = self.arc();
        Box::pin(async move { Ok(node.txns.handle(&node, request).await) })
    }

    fn status(&self) -> ApiFuture<v1::StatusReply> {
        ready(Ok(self.status_now()))
    }
}
