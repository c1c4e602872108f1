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
//! a random cluster id, and sends `Bootstrap` with the members, the groups'
//! memberships and the placement to each member, itself included. Each
//! group gets `replicas` voters (three by default) on distinct nodes
//! ([`founding_voters`]): every node holds about as many replicas as any
//! other, and the groups' first leaders are spread over the nodes. A member
//! persists all of it in one synced batch and starts its replica with
//! [`Start::Bootstrap`]; bootstrapping again with
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
//! A node that holds no replica of a group finds its leader by asking the
//! other nodes, and remembers the answer ([`Node::leader_hint`]).
//!
//! # Hosting and dropping replicas
//!
//! A replica move ([`crate::replicas`]) asks the new node to host an empty
//! replica ([`Node::host_replica_here`]) and the old one to drop its
//! replica once the voters no longer name it ([`Node::drop_replica_here`]);
//! both change the node record and the group's records in one synced
//! batch.
//!
//! # Adding nodes
//!
//! The `AddNode` call adds a started node to the running
//! cluster: every member records its address (`AddPeer`), then it is
//! bootstrapped holding no replica; replica rebalancing gives it some.
//!
//! Left out: removing a node from the address book, and changing a node's
//! address.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_paxos::{codec, Envelope, Membership, NodeId, RoleKind};
use meridian_proto::v1;
use meridian_storage::{
    keycode, version_user_key, versioned_range, Durability, KeyRange, Mvcc, ScanDirection, Space,
    WriteBatch,
};
use meridian_truetime::{Timestamp, TrueTime};
use meridian_txn::{RangeMap, Sleeper};
use serde::{Deserialize, Serialize};

use crate::clock::{judge_peer_clocks, PeerClock, SystemClock};
use crate::group::{
    state, Group, GroupEnv, LeaderEngine, MonoClock, Outbox, ReplicationOptions, Start, Storage,
};
use crate::net::{ApiFuture, Connector, NodeApi, PeerQueue};
use crate::paxos_log::PaxosStore;
use crate::route::{ClusterEngine, ClusterGroups};
use crate::txn_service::RemoteTxns;

/// The first group: it holds the system keys (the catalog) and, in a
/// cluster of one group, everything.
pub const DATA_GROUP: u64 = 1;

/// Table ids below this are the catalog's (`meridian-sql`): they stay in the
/// first group.
pub const FIRST_TABLE_ID: u64 = 100;

/// How many tables get a range of their own in the initial placement; the
/// keys of later tables stay with the first group.
pub const PLACED_TABLES: u64 = 64;

/// How often a leader looks for prepared transactions whose outcome did
/// not come.
const RESOLVE_INTERVAL: Duration = Duration::from_secs(1);

/// A prepared transaction older than this (its prepare timestamp, in true
/// time) is resolved with its coordinator.
pub const PREPARED_TIMEOUT: Duration = Duration::from_secs(5);

/// How many replicas each group of a new cluster gets when `init` does not
/// say (or every node of a smaller cluster).
pub const DEFAULT_REPLICAS: usize = 3;

/// The most replicas a group of a new cluster may get.
pub const MAX_REPLICAS: usize = 7;

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
    /// The placement: range starts and the group holding each range.
    ranges: Vec<(Vec<u8>, u64)>,
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
    /// Which group holds which keys (empty until bootstrapped), with the
    /// timestamp of the placement rows it was read from (`MIN`: the
    /// founding placement).
    placement: RwLock<Option<(Timestamp, Arc<RangeMap>)>>,
    /// Woken when a group refused a key: the placement is stale.
    placement_stale: tokio::sync::Notify,
    /// The leaders of groups this node holds no replica of, as last heard.
    leader_hints: RwLock<HashMap<u64, NodeId>>,
    /// Set when the node stops: work in flight ends with it.
    stopped: tokio::sync::watch::Sender<bool>,
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
                let record: NodeRecord = postcard::from_bytes(&bytes).map_err(|e| {
                    Error::InvalidInput(format!(
                        "this data directory's node record cannot be read ({e}): it was \
                         written by an earlier Meridian (before the placement was stored) \
                         or is damaged; choose another data directory"
                    ))
                })?;
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
            placement: RwLock::new(None),
            placement_stale: tokio::sync::Notify::new(),
            leader_hints: RwLock::new(HashMap::new()),
            stopped: tokio::sync::watch::channel(false).0,
        });
        if record.cluster != 0 {
            node.connect_peers(&record)?;
            node.set_placement(RangeMap::new(record.ranges.clone())?);
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
        tokio::spawn(resolve_abandoned(Arc::downgrade(&node)));
        tokio::spawn(collect_garbage(Arc::downgrade(&node)));
        tokio::spawn(crate::placement::keep_fresh(Arc::downgrade(&node)));
        tokio::spawn(crate::placement::split_large_ranges(Arc::downgrade(&node)));
        tokio::spawn(crate::rebalance::rebalance_leaders(Arc::downgrade(&node)));
        tokio::spawn(crate::replicas::retire_removed(Arc::downgrade(&node)));
        tokio::spawn(crate::replicas::rebalance_replicas(Arc::downgrade(&node)));
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
        ClusterEngine::new(Arc::new(ClusterGroups::new(self.clone())))
    }

    /// How this node's replicas run.
    pub(crate) fn replication_options(&self) -> &ReplicationOptions {
        &self.config.replication
    }

    /// Which group holds which keys.
    pub fn placement(&self) -> Result<Arc<RangeMap>> {
        self.placement
            .read()
            .expect("placement poisoned")
            .as_ref()
            .map(|(_, map)| map.clone())
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "node {} does not belong to a cluster yet (run meridian init)",
                    self.config.id
                ))
            })
    }

    /// The leader of `group` as last heard, for a group this node holds no
    /// replica of (its replica's status says who leads the others).
    pub fn leader_hint(&self, group: u64) -> Option<NodeId> {
        self.leader_hints
            .read()
            .expect("leader hints poisoned")
            .get(&group)
            .copied()
    }

    /// Notes what asking node `asked` about `group` taught: `Some(leader)`
    /// when it led or named the leader, `None` when it did not know or did
    /// not answer (a hint naming `asked` is then dropped).
    pub(crate) fn learn_leader(&self, group: u64, asked: NodeId, leader: Option<NodeId>) {
        let mut hints = self.leader_hints.write().expect("leader hints poisoned");
        match leader {
            Some(leader) => {
                hints.insert(group, leader);
            }
            None => {
                if hints.get(&group) == Some(&asked) {
                    hints.remove(&group);
                }
            }
        }
    }

    /// The ids of the other members.
    pub fn peer_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .peers
            .read()
            .expect("peers poisoned")
            .keys()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The bytes (keys and values) of every stored version of the keys in
    /// `range` on this node.
    pub fn stored_bytes(&self, range: &KeyRange) -> Result<u64> {
        self.versions(range)
            .try_fold(0, |total, version| Ok(total + version?.1))
    }

    /// The stored versions of the keys in `range` on this node, in key
    /// order: each raw key with its size (key and value bytes).
    fn versions(&self, range: &KeyRange) -> impl Iterator<Item = Result<(Vec<u8>, u64)>> + '_ {
        self.storage
            .scan(Space::Data, &versioned_range(range), ScanDirection::Forward)
            .map(|item| {
                item.map(|(key, value)| {
                    let size = (key.len() + value.len()) as u64;
                    (key, size)
                })
            })
    }

    /// Where to cut `range` into two halves of about equal stored bytes, if
    /// its versions on this node take more than `max_bytes`: the first user
    /// key at or past the middle, or past it the next one if that is the
    /// range's start (a single key cannot be split).
    pub fn split_point(&self, range: &KeyRange, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        let total = self.stored_bytes(range)?;
        if total <= max_bytes {
            return Ok(None);
        }
        let start = match &range.start {
            Bound::Included(start) => start.as_slice(),
            _ => &[],
        };
        let mut seen = 0u64;
        for version in self.versions(range) {
            let (key, size) = version?;
            seen += size;
            if seen >= total / 2 {
                let user = version_user_key(&key)?;
                if user.as_slice() > start {
                    return Ok(Some(user));
                }
            }
        }
        Ok(None)
    }

    /// Installs the founding placement.
    fn set_placement(&self, map: RangeMap) {
        *self.placement.write().expect("placement poisoned") =
            Some((Timestamp::MIN, Arc::new(map)));
    }

    /// Installs the placement rows read at `read_ts`, unless the cache was
    /// read at a later timestamp.
    pub(crate) fn install_placement(&self, read_ts: Timestamp, map: RangeMap) {
        let mut placement = self.placement.write().expect("placement poisoned");
        if placement.as_ref().is_none_or(|(ts, _)| *ts < read_ts) {
            if placement.as_ref().is_none_or(|(_, old)| **old != map) {
                tracing::info!(
                    node = self.config.id,
                    ranges = map.ranges().count(),
                    "placement changed"
                );
            }
            *placement = Some((read_ts, Arc::new(map)));
        }
    }

    /// Says the cached placement is stale (a group refused a key): it is
    /// read again at once.
    pub fn placement_stale(&self) {
        self.placement_stale.notify_one();
    }

    /// Resolves when the placement is said to be stale.
    pub(crate) async fn placement_stale_notified(&self) {
        self.placement_stale.notified().await;
    }

    /// The placement the cluster was founded with.
    pub(crate) fn founding_placement(&self) -> Vec<(Vec<u8>, u64)> {
        self.record.read().expect("record poisoned").ranges.clone()
    }

    /// The cluster's groups.
    pub fn known_groups(&self) -> BTreeSet<u64> {
        let record = self.record.read().expect("record poisoned");
        let mut groups: BTreeSet<u64> = record.groups.iter().copied().collect();
        groups.extend(record.ranges.iter().map(|&(_, g)| g));
        groups
    }

    /// The key ranges the founding placement gives `group` (what its state
    /// machine serves until a move changes it).
    fn spans_of(&self, group: u64) -> Result<Vec<KeyRange>> {
        let founding = RangeMap::new(self.founding_placement())?;
        Ok(founding
            .ranges()
            .filter(|&(_, _, g)| g == group)
            .map(|(start, end, _)| KeyRange {
                start: Bound::Included(start.to_vec()),
                end: end.map_or(Bound::Unbounded, |e| Bound::Excluded(e.to_vec())),
            })
            .collect())
    }

    /// How many outcome records this node's replica of `group` keeps
    /// (transactions the group coordinated that a participant may still
    /// ask about, and aborts); 0 if it hosts none.
    pub fn outcome_records(&self, group: u64) -> Result<usize> {
        if self.group(group).is_none() {
            return Ok(0);
        }
        state::stored_outcome_count(&self.storage, group)
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
        self.stopped.send_replace(true);
        self.groups.write().expect("groups poisoned").clear();
        self.peers.write().expect("peers poisoned").clear();
        self.txns.clear();
        self.record.write().expect("record poisoned").cluster = 0;
    }

    /// Completes once the node is stopped ([`Node::stop`]): what a call
    /// runs against a stopped node is dropped, as a crash would drop it.
    pub async fn stopped(&self) {
        let mut stopped = self.stopped.subscribe();
        let _ = stopped.wait_for(|&s| s).await;
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
        let replica = Group::start(env, group, self.spans_of(group)?, start)?;
        self.groups
            .write()
            .expect("groups poisoned")
            .insert(group, Arc::new(replica));
        Ok(())
    }

    /// The replicas this node hosts.
    pub fn hosted(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .expect("groups poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Checks a call names this node's cluster.
    pub(crate) fn check_cluster(&self, cluster: u64) -> Result<()> {
        if cluster == 0 || cluster != self.cluster() {
            return Err(Error::InvalidInput(format!(
                "node {} does not belong to cluster {cluster:016x}",
                self.config.id
            )));
        }
        Ok(())
    }

    /// Starts an empty replica of `group` here, to be added to its voters
    /// (the `HostReplica` call; a no-op if the node has one). The node
    /// record names it before it starts, so a restart recovers it.
    pub async fn host_replica_here(&self, group: u64) -> Result<()> {
        let _guard = self.bootstrap_lock.lock().await;
        if self.group(group).is_some() {
            return Ok(());
        }
        if !self.known_groups().contains(&group) {
            return Err(Error::InvalidInput(format!(
                "the cluster has no group {group}"
            )));
        }
        let mut record = self.record.read().expect("record poisoned").clone();
        record.groups.push(group);
        record.groups.sort_unstable();
        // Whatever an earlier replica here left (dropped in a crash before
        // its records were erased) must not be taken for this one's.
        let mut batch = forget_group(&self.storage, group);
        put_record(&mut batch, &record);
        self.storage.write(batch, Durability::Sync)?;
        *self.record.write().expect("record poisoned") = record;
        self.start_group(group, Start::Join)?;
        tracing::info!(node = self.config.id, group, "hosting a new replica");
        Ok(())
    }

    /// Stops and forgets this node's replica of `group` (the `DropReplica`
    /// call; a no-op if there is none): refused while the group's voters
    /// name this node, as its leader tells when this replica believes so.
    /// Its Paxos and state machine records are erased with the node record
    /// change, in one batch; its versions stay in the store.
    pub async fn drop_replica_here(self: &Arc<Self>, group: u64) -> Result<()> {
        let Some(replica) = self.group(group) else {
            return Ok(());
        };
        if replica.status().voters.contains(&self.config.id) {
            let voters = crate::replicas::voters(&ClusterGroups::new(self.clone()), group).await?;
            if voters.contains(&self.config.id) {
                return Err(Error::InvalidInput(format!(
                    "node {} is a voter of group {group}: remove it from the voters first \
                     (meridian move-replica)",
                    self.config.id
                )));
            }
        }
        let _guard = self.bootstrap_lock.lock().await;
        let Some(replica) = self.groups.write().expect("groups poisoned").remove(&group) else {
            return Ok(());
        };
        replica.shut_down().await;
        let mut record = self.record.read().expect("record poisoned").clone();
        record.groups.retain(|&g| g != group);
        let mut batch = forget_group(&self.storage, group);
        put_record(&mut batch, &record);
        self.storage.write(batch, Durability::Sync)?;
        *self.record.write().expect("record poisoned") = record;
        tracing::info!(node = self.config.id, group, "dropped a replica");
        Ok(())
    }

    /// Founds a cluster (the `Init` call) with `groups` groups of
    /// `replicas` replicas (0: the default).
    async fn found_cluster(self: Arc<Self>, groups: u32, replicas: u32) -> Result<v1::InitReply> {
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
        let ids: Vec<NodeId> = ids.into_iter().collect();
        let groups = u64::from(groups.max(1));
        let voters = founding_voters(
            &ids,
            groups,
            usize::try_from(replicas).unwrap_or(usize::MAX),
        )?;
        let cluster = loop {
            let id: u64 = rand::random();
            if id != 0 {
                break id;
            }
        };
        let request = v1::BootstrapRequest {
            cluster,
            peers: members.clone(),
            groups: (DATA_GROUP..)
                .zip(voters)
                .map(|(id, voters)| v1::GroupSpec { id, voters })
                .collect(),
            ranges: initial_placement(groups)
                .into_iter()
                .map(|(start, group)| v1::RangeSpec { start, group })
                .collect(),
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

    /// Adds the node at `address` to this node's cluster (the `AddNode`
    /// call): it must answer and belong to no cluster. Every member adds it
    /// to its address book first (so they take its messages), then it is
    /// bootstrapped as a member holding no replica, with the address book
    /// and the founding placement (it reads the current one from the
    /// cluster like any node). Every step is idempotent: a call that failed
    /// half way is finished by calling again.
    async fn add_node(self: Arc<Self>, address: String) -> Result<v1::AddNodeReply> {
        let cluster = self.cluster();
        if cluster == 0 {
            return Err(Error::Unavailable(format!(
                "node {} does not belong to a cluster yet (run meridian init)",
                self.config.id
            )));
        }
        let api = self.connector.connect(&address)?;
        let hello = api
            .hello(v1::HelloRequest {
                from: self.config.id,
                address: self.config.address.clone(),
            })
            .await
            .map_err(|err| Error::Unavailable(format!("cannot reach {address}: {err}")))?;
        let id = hello.node_id;
        if hello.cluster != 0 && hello.cluster != cluster {
            return Err(Error::InvalidInput(format!(
                "node {id} at {address} belongs to another cluster ({:016x})",
                hello.cluster
            )));
        }
        let (peers, ranges) = {
            let record = self.record.read().expect("record poisoned");
            (record.peers.clone(), record.ranges.clone())
        };
        if let Some((_, known)) = peers.iter().find(|(peer, _)| *peer == id) {
            if *known != address {
                return Err(Error::InvalidInput(format!(
                    "node {id} is already a member, at {known}, not {address}"
                )));
            }
        }
        let peer = v1::Peer {
            id,
            address: address.clone(),
        };
        for (member, at) in &peers {
            let request = v1::AddPeerRequest {
                cluster,
                peer: Some(peer.clone()),
            };
            let told = if *member == self.config.id {
                self.add_peer_here(request).await
            } else {
                match self.connector.connect(at) {
                    Ok(api) => api.add_peer(request).await,
                    Err(err) => Err(err),
                }
            };
            told.map_err(|err| {
                Error::Unavailable(format!(
                    "telling node {member} at {at} of node {id} failed: {err}; run add-node again"
                ))
            })?;
        }
        let mut members: Vec<v1::Peer> = peers
            .iter()
            .filter(|(member, _)| *member != id)
            .map(|(member, at)| v1::Peer {
                id: *member,
                address: at.clone(),
            })
            .collect();
        members.push(peer);
        api.bootstrap(v1::BootstrapRequest {
            cluster,
            peers: members.clone(),
            groups: Vec::new(),
            ranges: ranges
                .into_iter()
                .map(|(start, group)| v1::RangeSpec { start, group })
                .collect(),
        })
        .await
        .map_err(|err| {
            Error::Unavailable(format!(
                "bootstrapping node {id} at {address} failed: {err}; run add-node again"
            ))
        })?;
        tracing::info!(node = id, %address, "added a node to the cluster");
        Ok(v1::AddNodeReply {
            node_id: id,
            members,
        })
    }

    /// Adds a member to the address book (the `AddPeer` call), persisted
    /// before the peer is connected; a no-op for a member already known at
    /// that address.
    async fn add_peer_here(&self, request: v1::AddPeerRequest) -> Result<()> {
        let _guard = self.bootstrap_lock.lock().await;
        self.check_cluster(request.cluster)?;
        let peer = request
            .peer
            .ok_or_else(|| Error::InvalidInput("AddPeer without a peer".into()))?;
        if peer.id == 0 {
            return Err(Error::InvalidInput("node id 0 is reserved".into()));
        }
        let mut record = self.record.read().expect("record poisoned").clone();
        match record.peers.iter().find(|(id, _)| *id == peer.id) {
            Some((_, address)) if *address == peer.address => return Ok(()),
            Some((_, address)) => {
                return Err(Error::InvalidInput(format!(
                    "node {} is already a member, at {address}",
                    peer.id
                )))
            }
            None => {}
        }
        record.peers.push((peer.id, peer.address.clone()));
        write_record(&self.storage, &record)?;
        *self.record.write().expect("record poisoned") = record.clone();
        self.connect_peers(&record)?;
        tracing::info!(node = self.config.id, peer = peer.id, address = %peer.address, "a node joined the cluster");
        Ok(())
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
            ranges: request
                .ranges
                .iter()
                .map(|r| (r.start.clone(), r.group))
                .collect(),
        };
        if record.ranges.is_empty() {
            return Err(Error::InvalidInput(
                "a bootstrap request without a placement".into(),
            ));
        }
        let placement = RangeMap::new(record.ranges.clone())?;
        write_record(&self.storage, &record)?;
        self.set_placement(placement);
        *self.record.write().expect("record poisoned") = record.clone();
        self.connect_peers(&record)?;
        for spec in request
            .groups
            .iter()
            .filter(|g| g.voters.contains(&self.config.id))
        {
            let membership = Membership::new(spec.voters.iter().copied());
            self.start_group(spec.id, Start::Bootstrap(membership))?;
            // Spread the first leaders over the nodes: the group's preferred
            // voter campaigns at once, the others after an election timeout.
            if preferred_leader(spec) == Some(self.config.id) {
                if let Some(group) = self.group(spec.id) {
                    group.campaign();
                }
            }
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
            if cluster == 0 {
                // Founding: a member that bootstrapped first already talks
                // to this one, whose Bootstrap call is on its way.
                tracing::debug!(
                    from = batch.from,
                    "refused paxos messages before joining the cluster"
                );
            } else {
                tracing::warn!(
                    from = batch.from,
                    their_cluster = format!("{:016x}", batch.cluster),
                    our_cluster = format!("{cluster:016x}"),
                    "refused paxos messages from another cluster"
                );
            }
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
                    lease_remaining_nanos: s
                        .lease
                        .map_or(0, |l| l.expires.saturating_sub(self.clock.now())),
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

/// The placement a new cluster of `groups` groups starts with: the system
/// keys (table ids below [`FIRST_TABLE_ID`]) in the first group, then one
/// range per table for the first [`PLACED_TABLES`] tables, dealt round the
/// groups, then the rest in the first group. Row keys start with their
/// table id (`/<table>/<index>/...`, the order-preserving `u64` encoding
/// of `meridian_storage::keycode`), so each range is one table.
pub fn initial_placement(groups: u64) -> Vec<(Vec<u8>, u64)> {
    let mut ranges = vec![(Vec::new(), DATA_GROUP)];
    if groups <= 1 {
        return ranges;
    }
    for i in 0..PLACED_TABLES {
        let mut start = Vec::new();
        keycode::encode_u64(&mut start, FIRST_TABLE_ID + i);
        ranges.push((start, DATA_GROUP + (i + 1) % groups));
    }
    let mut rest = Vec::new();
    keycode::encode_u64(&mut rest, FIRST_TABLE_ID + PLACED_TABLES);
    ranges.push((rest, DATA_GROUP));
    ranges
}

/// Runs `round` every `interval` while the node lives (never when
/// `interval` is zero), the first one an interval after the start. Rounds
/// are skipped while the node belongs to no cluster, and a round in flight
/// when the node stops is dropped with it: the node's periodic tasks.
pub(crate) async fn every<F, Fut>(node: Weak<Node>, interval: Duration, mut round: F)
where
    F: FnMut(Arc<Node>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if interval.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(live) = node.upgrade() else { return };
        if live.cluster() == 0 {
            continue;
        }
        let running = round(live.clone());
        tokio::select! {
            () = running => {}
            () = live.stopped() => return,
        }
    }
}

/// Removes the versions no read at or after `now - gc_retention` can see,
/// every tenth of the retention (between a second and five minutes), while
/// the node lives. Each replica collects its own store: what it removes lies
/// below the horizon, where every replica refuses reads, so replicas agree
/// on everything they serve. The scan runs off the async executor.
async fn collect_garbage(node: Weak<Node>) {
    let retention = match node.upgrade() {
        Some(node) => node.config.replication.gc_retention,
        None => return,
    };
    let interval = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(300));
    every(node, interval, |node| async move {
        let horizon = node.tt.now().earliest.saturating_sub(retention);
        let mvcc = node.mvcc.clone();
        match tokio::task::spawn_blocking(move || mvcc.gc(horizon)).await {
            Ok(Ok(stats)) if stats.versions_removed > 0 => {
                tracing::debug!(%horizon, removed = stats.versions_removed, "collected old versions")
            }
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(%err, "garbage collection failed"),
            Err(err) => tracing::warn!(%err, "garbage collection panicked"),
        }
    })
    .await
}

/// The voter that should lead `spec`'s group first: its first
/// ([`founding_voters`] puts them round the nodes).
fn preferred_leader(spec: &v1::GroupSpec) -> Option<NodeId> {
    spec.voters.first().copied()
}

/// The voters of each of the `groups` groups of a cluster founded by the
/// nodes `ids` (ascending), `replicas` of them (0: [`DEFAULT_REPLICAS`], or
/// every node of a smaller cluster) on distinct nodes, the first voter of
/// each group being the one to lead it first.
///
/// Greedy, group by group: a group's voters are the nodes holding the
/// fewest replicas so far, and the first of them is the one leading the
/// fewest groups. Ties go to the node nearest after the `i`-th round the
/// ring (for the `i`-th group). Every node holds as many replicas as any
/// other, give or take one.
pub fn founding_voters(ids: &[NodeId], groups: u64, replicas: usize) -> Result<Vec<Vec<NodeId>>> {
    let nodes = ids.len();
    if nodes == 0 {
        return Err(Error::InvalidInput("a cluster needs a node".into()));
    }
    let replicas = match replicas {
        0 => DEFAULT_REPLICAS.min(nodes),
        asked => asked,
    };
    if replicas > MAX_REPLICAS {
        return Err(Error::InvalidInput(format!(
            "a group may have at most {MAX_REPLICAS} replicas, not {replicas}"
        )));
    }
    if replicas > nodes {
        return Err(Error::InvalidInput(format!(
            "cannot place {replicas} replicas of each group on distinct nodes: \
             the cluster has {nodes} node{}",
            if nodes == 1 { "" } else { "s" }
        )));
    }
    let mut held = vec![0usize; nodes];
    let mut led = vec![0usize; nodes];
    let mut voters = Vec::new();
    for group in 0..groups {
        let start = usize::try_from(group % nodes as u64).expect("below the node count");
        // The nodes in ring order from the group's turn; sorts are stable.
        let mut ring: Vec<usize> = (0..nodes).map(|step| (start + step) % nodes).collect();
        ring.sort_by_key(|&i| held[i]);
        let mut picked: Vec<usize> = ring.into_iter().take(replicas).collect();
        picked.sort_by_key(|&i| led[i]);
        led[picked[0]] += 1;
        for &i in &picked {
            held[i] += 1;
        }
        voters.push(picked.into_iter().map(|i| ids[i]).collect());
    }
    Ok(voters)
}

/// Resolves, at the groups this node leads, the prepared transactions whose
/// outcome did not come within [`PREPARED_TIMEOUT`] (their gateway died, or
/// its message was lost): the coordinator group tells the outcome, recording
/// an abort if it had not decided. Runs while the node lives.
async fn resolve_abandoned(node: Weak<Node>) {
    every(node, RESOLVE_INTERVAL, |node| async move {
        resolve_once(&node).await
    })
    .await
}

/// One round of [`resolve_abandoned`].
async fn resolve_once(node: &Arc<Node>) {
    let leading: Vec<(u64, LeaderEngine)> = node
        .hosted()
        .iter()
        .filter_map(|g| Some((g.id(), g.leader_engine()?)))
        .collect();
    let now = node.tt.now().earliest;
    let groups = ClusterGroups::new(node.clone());
    for (group, engine) in leading {
        // Read-only votes end by themselves once their bound passed.
        engine.expire_read_only_votes();
        // The stored records are the truth: the engine holds those it
        // prepared or restored, and misses one whose proposal was
        // ambiguous here yet reached the log.
        let records = match state::stored_prepare_records(&node.storage, group) {
            Ok(records) => records,
            Err(err) => {
                tracing::error!(group, %err, "cannot read the prepare records");
                continue;
            }
        };
        for entry in records {
            if now.duration_since(entry.prepare_ts) < PREPARED_TIMEOUT {
                continue;
            }
            let record = entry.to_record();
            let outcome = match groups.resolve(record.coordinator, record.gid).await {
                Ok(outcome) => outcome,
                Err(err) => {
                    tracing::warn!(gid = %record.gid, %err, "cannot resolve a prepared transaction yet");
                    continue;
                }
            };
            tracing::info!(gid = %record.gid, ?outcome, "resolved an abandoned prepared transaction");
            if let Err(err) = engine.decide_unheld(&record, outcome).await {
                tracing::warn!(gid = %record.gid, %err, "cannot apply a resolved outcome yet");
            }
        }
    }
}

fn write_record(storage: &Storage, record: &NodeRecord) -> Result<()> {
    let mut batch = WriteBatch::new();
    put_record(&mut batch, record);
    storage.write(batch, Durability::Sync)
}

fn put_record(batch: &mut WriteBatch, record: &NodeRecord) {
    batch.put(
        Space::Meta,
        NODE_KEY.to_vec(),
        postcard::to_allocvec(record).expect("node records always encode"),
    );
}

/// A batch erasing every record of this node's replica of `group`: its
/// Paxos records and its state machine's.
fn forget_group(storage: &Storage, group: u64) -> WriteBatch {
    let mut batch = WriteBatch::new();
    PaxosStore::new(storage.clone(), group).erase(&mut batch);
    state::erase(group, &mut batch);
    batch
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

    fn init(&self, request: v1::InitRequest) -> ApiFuture<v1::InitReply> {
        Box::pin(self.arc().found_cluster(request.groups, request.replicas))
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

    fn host_replica(&self, request: v1::ReplicaRequest) -> ApiFuture<()> {
        let node = self.arc();
        Box::pin(async move {
            node.check_cluster(request.cluster)?;
            node.host_replica_here(request.group).await
        })
    }

    fn drop_replica(&self, request: v1::ReplicaRequest) -> ApiFuture<()> {
        let node = self.arc();
        Box::pin(async move {
            node.check_cluster(request.cluster)?;
            node.drop_replica_here(request.group).await
        })
    }

    fn add_node(&self, request: v1::AddNodeRequest) -> ApiFuture<v1::AddNodeReply> {
        Box::pin(self.arc().add_node(request.address))
    }

    fn add_peer(&self, request: v1::AddPeerRequest) -> ApiFuture<()> {
        let node = self.arc();
        Box::pin(async move { node.add_peer_here(request).await })
    }

    fn move_replica(&self, request: v1::MoveReplicaRequest) -> ApiFuture<v1::MoveReplicaReply> {
        let node = self.arc();
        Box::pin(async move {
            if node.cluster() == 0 {
                return Err(Error::Unavailable(format!(
                    "node {} does not belong to a cluster yet (run meridian init)",
                    node.config.id
                )));
            }
            let groups = ClusterGroups::new(node);
            let voters =
                crate::replicas::move_replica(&groups, request.group, request.from, request.to)
                    .await?;
            Ok(v1::MoveReplicaReply { voters })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many replicas each node holds.
    fn held(ids: &[NodeId], voters: &[Vec<NodeId>]) -> Vec<usize> {
        ids.iter()
            .map(|id| voters.iter().filter(|v| v.contains(id)).count())
            .collect()
    }

    #[test]
    fn founding_voters_spread_replicas_evenly_and_first_leaders_round() {
        for nodes in 1..=9u64 {
            let ids: Vec<NodeId> = (1..=nodes).map(|i| i * 10).collect();
            for replicas in 1..=nodes.min(7) as usize {
                for groups in 1..=12 {
                    let voters = founding_voters(&ids, groups, replicas).unwrap();
                    assert_eq!(voters.len() as u64, groups);
                    for v in &voters {
                        let distinct: BTreeSet<_> = v.iter().collect();
                        assert_eq!((v.len(), distinct.len()), (replicas, replicas), "{v:?}");
                    }
                    let held = held(&ids, &voters);
                    let (min, max) = (held.iter().min().unwrap(), held.iter().max().unwrap());
                    assert!(
                        max - min <= 1,
                        "{nodes} nodes, {replicas} replicas, {groups} groups: {held:?}"
                    );
                    let led: Vec<usize> = ids
                        .iter()
                        .map(|id| voters.iter().filter(|v| v[0] == *id).count())
                        .collect();
                    // Leaders are only roughly even (leader rebalancing
                    // evens them out later); with every node a voter of
                    // every group they go round the ring.
                    let fair = groups.div_ceil(nodes) as usize;
                    assert!(
                        led.iter().all(|&l| l <= fair + 1),
                        "{nodes} nodes, {replicas} replicas, {groups} groups: led {led:?}"
                    );
                    if replicas == nodes as usize {
                        let firsts: Vec<NodeId> = voters.iter().map(|v| v[0]).collect();
                        let ring: Vec<NodeId> =
                            (0..groups).map(|g| ids[(g % nodes) as usize]).collect();
                        assert_eq!(firsts, ring);
                    }
                }
            }
        }
    }

    #[test]
    fn founding_voters_default_to_three_or_every_node() {
        assert_eq!(founding_voters(&[1, 2], 1, 0).unwrap(), vec![vec![1, 2]]);
        assert_eq!(
            founding_voters(&[1, 2, 3, 4, 5], 3, 0).unwrap(),
            vec![vec![1, 2, 3], vec![4, 5, 2], vec![3, 5, 4]]
        );
    }

    #[test]
    fn founding_voters_refuse_what_cannot_be_placed() {
        let too_many = founding_voters(&[1, 2, 3], 2, 4).unwrap_err();
        assert!(too_many.to_string().contains("3 nodes"), "{too_many}");
        let ids: Vec<NodeId> = (1..=9).collect();
        assert!(founding_voters(&ids, 1, 8).is_err());
        assert!(founding_voters(&[], 1, 0).is_err());
    }
}
