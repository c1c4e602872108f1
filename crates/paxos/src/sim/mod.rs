//! A deterministic simulator of one Paxos group, and the checkers run on
//! every simulation.
//!
//! [`Sim`] runs N replicas in one thread over a seeded, adversarial network
//! and seeded faults, in simulated true time (nanoseconds):
//!
//! - **network**: every message is encoded ([`crate::codec`]) and delivered
//!   after a random delay, so messages reorder; some are lost, some
//!   duplicated, some have a bit flipped in flight (refused as malformed);
//!   partitions cut a node off, split the group, or cut one direction only
//!   (asymmetric);
//! - **crashes**: a crashed node loses everything not yet persisted: the
//!   Ready being written (persisting takes a random disk latency) and the
//!   messages that were to follow it; it restarts from its "disk" with
//!   [`Replica::recover`];
//! - **clocks**: each node's clock runs at a fixed rate within
//!   `1 ± drift_ppm` of true time, from a random offset;
//! - **clients** write and read per-key registers (a KV state machine):
//!   writes go through the log, reads are lease reads at the leader;
//! - **membership**: voters are added (from spare nodes that start empty)
//!   and removed while all this goes on;
//! - **hand-overs**: leaders are asked to hand their leadership to another
//!   voter ([`Replica::transfer_leadership`]);
//! - **snapshots**: nodes snapshot their state machine and truncate the log
//!   at random, so lagging nodes install snapshots.
//!
//! The checkers: no two nodes apply different values in a slot, and every
//! node applies slots in order (agreement); a crashing node's disk holds
//! every promise and acceptance it had sent (vows: persist before send); at
//! the end, after healing every fault, a write proposed then is chosen and
//! every voter applies every chosen slot (durability and progress: nothing
//! committed is lost); the true-time intervals during which leaders held
//! leases never overlap; the client history is linearizable.
//!
//! Everything comes from one seed: [`run`] of the same seed and
//! [`SimConfig`] replays the same run exactly.

mod checks;
pub mod linearizability;
mod workload;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::codec;
use crate::config::{Config, MILLI, SECOND};
use crate::message::Message;
use crate::ready::Ready;
use crate::replica::{Replica, Stored};
use crate::types::{Membership, Nanos, NodeId, Slot, Value};
use linearizability::Call;

/// The knobs of a simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Initial voters (node ids `1..=voters`).
    pub voters: u64,
    /// Spare nodes (the next ids), empty, which membership changes may add.
    pub spares: u64,
    /// How long faults and clients run, in true time.
    pub duration: Nanos,
    /// How long the healed group gets to converge afterwards.
    pub settle: Nanos,
    /// Message loss probability.
    pub loss: f64,
    /// Message duplication probability.
    pub duplicate: f64,
    /// Probability that a message has a bit flipped in flight.
    pub corrupt: f64,
    /// Message delay range.
    pub delay: (Nanos, Nanos),
    /// Disk latency range (time to persist a Ready).
    pub disk: (Nanos, Nanos),
    /// The clocks' actual maximum drift (ppm). The replicas are configured
    /// with `assumed_drift_ppm`; a larger actual drift breaks the lease
    /// assumption (a test shows the checker catching it).
    pub drift_ppm: u64,
    /// The drift bound the replicas assume.
    pub assumed_drift_ppm: u64,
    /// Whether every clock drifts by the full `drift_ppm`, fast or slow.
    pub extreme_drift: bool,
    /// The share of faults that cut the leader off (on top of the usual
    /// mix, where it is one kind of 13).
    pub isolate_leader: f64,
    /// The share of faults that hand the leadership to another voter (on
    /// top of the usual mix, where it is one kind of 14).
    pub handover: f64,
    /// Mean time between faults (crash, partition, heal, membership change,
    /// leadership hand-over).
    pub fault_interval: Nanos,
    /// Probability of crashing a node while it persists a higher promise.
    pub crash_mid_promise: f64,
    /// Whether membership changes are injected.
    pub membership_changes: bool,
    /// Number of clients.
    pub clients: u64,
    /// Number of keys the clients use.
    pub keys: u64,
    /// Lease duration of the replicas.
    pub lease: Nanos,
    /// Heartbeat interval of the replicas.
    pub heartbeat: Nanos,
    /// Election timeout of the replicas.
    pub election: Nanos,
    /// Tick interval of the nodes' drivers.
    pub tick: Nanos,
    /// Print the nodes' status every 500 ms and every lease change (to
    /// stderr), for replaying a failing seed.
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            voters: 3,
            spares: 2,
            duration: 6 * SECOND,
            settle: 8 * SECOND,
            loss: 0.05,
            duplicate: 0.02,
            corrupt: 0.002,
            delay: (MILLI / 2, 15 * MILLI),
            disk: (MILLI / 10, 8 * MILLI),
            drift_ppm: 50_000,
            assumed_drift_ppm: 50_000,
            extreme_drift: false,
            isolate_leader: 0.0,
            handover: 0.0,
            fault_interval: 700 * MILLI,
            crash_mid_promise: 0.05,
            membership_changes: true,
            clients: 3,
            keys: 3,
            lease: 600 * MILLI,
            heartbeat: 60 * MILLI,
            election: 200 * MILLI,
            tick: 20 * MILLI,
            trace: false,
        }
    }
}

impl SimConfig {
    /// Fast handovers under extreme drift: short delays, fast disks, fine
    /// ticks, every clock off by the full bound. Lease handovers come as
    /// close as the protocol allows, so a lease margin that is too thin
    /// shows up as an overlap.
    pub fn lease_handover() -> Self {
        SimConfig {
            duration: 4 * SECOND,
            delay: (MILLI / 10, 2 * MILLI),
            disk: (MILLI / 20, MILLI / 2),
            extreme_drift: true,
            isolate_leader: 0.4,
            handover: 0.3,
            fault_interval: 400 * MILLI,
            clients: 2,
            membership_changes: false,
            heartbeat: 20 * MILLI,
            election: 60 * MILLI,
            tick: 4 * MILLI,
            ..SimConfig::default()
        }
    }
}

/// What a run did, for the soak log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Slots chosen (the highest applied slot).
    pub chosen: Slot,
    /// Client writes acknowledged.
    pub writes: u64,
    /// Lease reads served.
    pub reads: u64,
    /// Crashes.
    pub crashes: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages refused (any reason).
    pub refused: u64,
    /// Snapshots installed from another node.
    pub snapshots_installed: u64,
    /// Membership changes chosen.
    pub membership_changes: u64,
    /// Leaderships that held a lease.
    pub leases: u64,
    /// Leaderships handed over (`TimeoutNow` sent).
    pub handovers: u64,
    /// The shortest gap between two successive leases of different nodes
    /// (true time, nanoseconds; `u64::MAX` if there was no handover): how
    /// close the run came to a lease overlap.
    pub closest_handover: Nanos,
}

/// Runs one simulation; `Err` describes the first violated check.
pub fn run(seed: u64, cfg: &SimConfig) -> Result<Stats, String> {
    let mut sim = Sim::new(seed, cfg.clone());
    sim.run()
}

/// A node's clock: `local = offset + true * rate / 10^6`.
#[derive(Clone, Copy, Debug)]
struct Clock {
    /// Local reading at true time 0.
    offset: Nanos,
    /// Ticks per million true nanoseconds.
    rate: u64,
}

impl Clock {
    fn local(&self, t: Nanos) -> Nanos {
        self.offset + (u128::from(t) * u128::from(self.rate) / 1_000_000) as Nanos
    }

    /// The first true time at which the clock reads at least `local`.
    fn true_time(&self, local: Nanos) -> Nanos {
        let d = u128::from(local.saturating_sub(self.offset));
        (d * 1_000_000).div_ceil(u128::from(self.rate)) as Nanos
    }
}

/// What a node has on disk.
#[derive(Clone, Debug, Default)]
struct Disk {
    hard_state: Option<Vec<u8>>,
    /// The replica's snapshot record (index and membership, no data).
    snapshot: Option<Vec<u8>>,
    entries: BTreeMap<Slot, Vec<u8>>,
    /// The state machine as of a slot, saved when the log is compacted or a
    /// snapshot installed (the state machine's own durability).
    state: Option<(Slot, Vec<u8>)>,
}

/// A simulated node.
struct Node {
    id: NodeId,
    clock: Clock,
    replica: Option<Replica>,
    incarnation: u64,
    disk: Disk,
    /// The state machine: per-key registers.
    kv: BTreeMap<u64, u64>,
    /// Last applied slot of the state machine.
    applied: Slot,
    /// The Ready being persisted.
    persisting: Option<Ready>,
    /// An open lease interval: (true start, ballot, local expiry).
    lease: Option<(Nanos, crate::Ballot, Nanos)>,
}

/// A client's outstanding write.
struct PendingWrite {
    client: u64,
    call: usize,
    node: NodeId,
    incarnation: u64,
}

/// An event in the queue, ordered by time, then by scheduling order.
#[derive(Debug)]
struct Scheduled {
    at: Nanos,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: NodeId,
        bytes: Vec<u8>,
    },
    Tick(NodeId),
    Persisted {
        node: NodeId,
        incarnation: u64,
    },
    Restart(NodeId),
    Crash {
        node: NodeId,
        incarnation: u64,
        restart: Nanos,
        isolate: Option<NodeId>,
    },
    Marker,
    Fault,
    Client(u64),
    ClientGiveUp {
        client: u64,
        call: usize,
    },
}

/// The simulator.
pub struct Sim {
    cfg: SimConfig,
    seed: u64,
    rng: StdRng,
    now: Nanos,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: BTreeMap<NodeId, Node>,
    /// Blocked directed links.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Whether faults and clients are still running.
    chaos: bool,
    /// Slot → value, as first applied by anyone.
    chosen: BTreeMap<Slot, Value>,
    /// Closed lease intervals: (true start, true end, node, ballot).
    leases: Vec<(Nanos, Nanos, NodeId, crate::Ballot)>,
    history: Vec<Call>,
    writes: BTreeMap<u64, PendingWrite>,
    busy: BTreeSet<u64>,
    next_value: u64,
    stats: Stats,
    failure: Option<String>,
    /// Print the nodes' status every 500 ms, and lease changes.
    trace: bool,
    /// What each node told others about its durable state.
    vows: BTreeMap<NodeId, Vows>,
    /// The slot of the first marker write (proposed after the heal) that
    /// was applied: the healed group must make progress, not just agree.
    marker_slot: Option<Slot>,
    /// The id of the next marker write.
    next_marker: u64,
}

/// What a node vowed in messages that may only be sent after persisting:
/// a promise (or a heartbeat acknowledgement) of a ballot, acceptances of
/// slots in ballots. A crash must never take a vow back.
#[derive(Debug, Default)]
struct Vows {
    promised: crate::Ballot,
    accepted: BTreeMap<Slot, crate::Ballot>,
}

impl Sim {
    /// A simulation of `cfg` driven by `seed`.
    pub fn new(seed: u64, cfg: SimConfig) -> Self {
        let cfg_trace = cfg.trace;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut nodes = BTreeMap::new();
        let voters = Membership::new(1..=cfg.voters);
        for id in 1..=cfg.voters + cfg.spares {
            let drift = cfg.drift_ppm as i64;
            let offset = if cfg.extreme_drift {
                if rng.random_bool(0.5) {
                    drift
                } else {
                    -drift
                }
            } else {
                rng.random_range(-drift..=drift)
            };
            let rate = (1_000_000 + offset) as u64;
            let clock = Clock {
                offset: rng.random_range(0..1_000 * SECOND),
                rate,
            };
            let rcfg = replica_config(&cfg, id, rng.random());
            let now = clock.local(0);
            let replica = if id <= cfg.voters {
                Replica::bootstrap(rcfg, voters.clone(), now)
            } else {
                Replica::join(rcfg, now)
            }
            .expect("valid config");
            nodes.insert(
                id,
                Node {
                    id,
                    clock,
                    replica: Some(replica),
                    incarnation: 0,
                    disk: Disk::default(),
                    kv: BTreeMap::new(),
                    applied: 0,
                    persisting: None,
                    lease: None,
                },
            );
        }
        let mut sim = Sim {
            cfg,
            seed,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            blocked: BTreeSet::new(),
            chaos: true,
            chosen: BTreeMap::new(),
            leases: Vec::new(),
            history: Vec::new(),
            writes: BTreeMap::new(),
            busy: BTreeSet::new(),
            next_value: 1,
            stats: Stats::default(),
            failure: None,
            trace: cfg_trace,
            vows: BTreeMap::new(),
            marker_slot: None,
            next_marker: MARKER_IDS,
        };
        let ids: Vec<NodeId> = sim.nodes.keys().copied().collect();
        for id in ids {
            let at = sim.rng.random_range(0..sim.cfg.tick);
            sim.schedule(at, Event::Tick(id));
        }
        for client in 0..sim.cfg.clients {
            let at = sim.rng.random_range(0..100 * MILLI);
            sim.schedule(at, Event::Client(client));
        }
        let at = sim.fault_delay();
        sim.schedule(at, Event::Fault);
        sim
    }

    fn schedule(&mut self, after: Nanos, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: self.now + after,
            seq: self.seq,
            event,
        }));
    }

    fn fault_delay(&mut self) -> Nanos {
        let mean = self.cfg.fault_interval;
        self.rng.random_range(mean / 2..mean * 3 / 2)
    }

    fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(format!(
                "seed {} at t={}ms: {why}",
                self.seed,
                self.now / MILLI
            ));
        }
    }

    /// Runs to the end and checks everything.
    pub fn run(&mut self) -> Result<Stats, String> {
        let end = self.cfg.duration + self.cfg.settle;
        while let Some(Reverse(Scheduled { at, event, .. })) = self.queue.pop() {
            if at > end || self.failure.is_some() {
                break;
            }
            let before = self.now;
            self.now = at;
            if self.chaos && at >= self.cfg.duration {
                self.heal_all();
            }
            // Once healed, stop as soon as the group has converged.
            if !self.chaos
                && at / (100 * MILLI) != before / (100 * MILLI)
                && self.check_converged().is_ok()
            {
                break;
            }
            if self.trace && at / (500 * MILLI) != before / (500 * MILLI) {
                eprintln!("t={}ms\n{}", at / MILLI, self.status());
            }
            self.handle(event);
        }
        self.now = end;
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        self.close_all_leases();
        self.check_leases()?;
        self.check_converged()?;
        linearizability::check(&self.history).map_err(|e| format!("seed {}: {e}", self.seed))?;
        self.stats.chosen = self.chosen.keys().next_back().copied().unwrap_or(0);
        self.stats.leases = self.leases.len() as u64;
        Ok(self.stats.clone())
    }

    /// Ends the chaos: heals the network, restarts crashed nodes.
    fn heal_all(&mut self) {
        self.chaos = false;
        self.blocked.clear();
        let crashed: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.replica.is_none())
            .map(|n| n.id)
            .collect();
        for id in crashed {
            self.restart(id);
        }
        self.schedule(0, Event::Marker);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { to, bytes } => {
                let node = self.nodes.get_mut(&to).expect("node");
                let local = node.clock.local(self.now);
                let Some(replica) = node.replica.as_mut() else {
                    return;
                };
                self.stats.delivered += 1;
                if let Err(_rejection) = replica.step_bytes(local, &bytes) {
                    self.stats.refused += 1;
                }
                self.pump(to);
            }
            Event::Tick(id) => {
                let node = self.nodes.get_mut(&id).expect("node");
                let local = node.clock.local(self.now);
                if let Some(replica) = node.replica.as_mut() {
                    replica.tick(local);
                    self.pump(id);
                }
                let jitter = self.rng.random_range(0..self.cfg.tick / 4 + 1);
                self.schedule(self.cfg.tick + jitter, Event::Tick(id));
            }
            Event::Persisted { node, incarnation } => self.persisted(node, incarnation),
            Event::Restart(id) => self.restart(id),
            Event::Marker => self.marker(),
            Event::Crash {
                node,
                incarnation,
                restart,
                isolate,
            } => {
                if self.chaos && self.nodes[&node].incarnation == incarnation {
                    if let Some(l) = isolate {
                        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                        for other in ids {
                            if other != l {
                                self.blocked.insert((l, other));
                                self.blocked.insert((other, l));
                            }
                        }
                    }
                    self.crash(node);
                    self.schedule(restart, Event::Restart(node));
                }
            }
            Event::Fault => {
                if self.chaos {
                    self.fault();
                    let at = self.fault_delay();
                    self.schedule(at, Event::Fault);
                }
            }
            Event::Client(client) => {
                if self.chaos {
                    self.client_op(client);
                }
            }
            Event::ClientGiveUp { client, call } => {
                if self
                    .writes
                    .values()
                    .any(|w| w.client == client && w.call == call)
                {
                    self.writes
                        .retain(|_, w| !(w.client == client && w.call == call));
                    self.client_done(client);
                }
            }
        }
        self.observe_leases();
    }

    /// Hands a node's Ready to its "driver": sends the immediate messages and
    /// starts persisting the rest.
    fn pump(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node");
        if node.persisting.is_some() {
            return;
        }
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        if !replica.has_ready() {
            return;
        }
        let mut ready = replica.ready();
        let incarnation = node.incarnation;
        // The adversary likes to crash a node while it writes a new promise.
        let on_disk = node
            .disk
            .hard_state
            .as_ref()
            .map(|b| codec::decode_hard_state(b).expect("own disk").promised)
            .unwrap_or_default();
        let new_promise = ready
            .hard_state
            .as_ref()
            .is_some_and(|h| h.promised > on_disk);
        let messages = std::mem::take(&mut ready.messages);
        node.persisting = Some(ready);
        for env in messages {
            self.send(&env);
        }
        let latency = self.rng.random_range(self.cfg.disk.0..=self.cfg.disk.1);
        self.schedule(
            latency,
            Event::Persisted {
                node: id,
                incarnation,
            },
        );
        if self.chaos && new_promise && self.rng.random_bool(self.cfg.crash_mid_promise) {
            let at = self.rng.random_range(0..latency);
            let restart = self.rng.random_range(20 * MILLI..1500 * MILLI);
            self.schedule(
                at,
                Event::Crash {
                    node: id,
                    incarnation,
                    restart,
                    isolate: None,
                },
            );
        }
    }

    /// The disk write of a node's Ready completed: store it, send what had to
    /// wait for it, apply, advance.
    fn persisted(&mut self, id: NodeId, incarnation: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        if node.incarnation != incarnation || node.replica.is_none() {
            return;
        }
        let Some(ready) = node.persisting.take() else {
            return;
        };
        if let Some(snapshot) = &ready.snapshot {
            node.disk.snapshot = Some(codec::encode_snapshot(&snapshot.without_data()));
            node.disk.state = Some((snapshot.index, snapshot.data.clone()));
            node.kv = decode_kv(&snapshot.data);
            node.applied = snapshot.index;
            if snapshot.index > 0 {
                self.stats.snapshots_installed += 1;
            }
        }
        if let Some(index) = ready.compact {
            node.disk.entries = node.disk.entries.split_off(&(index + 1));
        }
        for entry in &ready.entries {
            node.disk
                .entries
                .insert(entry.slot, codec::encode_entry(entry));
        }
        if let Some(hs) = &ready.hard_state {
            node.disk.hard_state = Some(codec::encode_hard_state(hs));
        }
        for env in &ready.persisted_messages {
            self.send(env);
        }
        for entry in &ready.committed {
            self.apply(id, entry);
        }
        let node = self.nodes.get_mut(&id).expect("node");
        let replica = node.replica.as_mut().expect("alive");
        replica.advance();
        for to in &ready.snapshot_wanted {
            let data = encode_kv(&node.kv).expect("state machines encode");
            replica
                .send_snapshot(*to, node.applied, data)
                .expect("the applied state is a valid snapshot");
        }
        // Compact now and then, after saving the state machine.
        let applied = replica.applied();
        if applied > replica.snapshot_index() + 8 && self.rng.random_bool(0.05) {
            if let (true, Some(data)) = (node.applied == applied, encode_kv(&node.kv)) {
                node.disk.state = Some((applied, data));
                let snapshot = replica.compact(applied).expect("valid compaction");
                node.disk.snapshot = Some(codec::encode_snapshot(snapshot));
            }
        }
        self.pump(id);
    }

    /// Applies one committed entry at node `id`, checking agreement.
    fn apply(&mut self, id: NodeId, entry: &crate::Entry) {
        let node = self.nodes.get_mut(&id).expect("node");
        if entry.slot != node.applied + 1 {
            let why = format!("n{id} applied slot {} after {}", entry.slot, node.applied);
            self.fail(why);
            return;
        }
        node.applied = entry.slot;
        match self.chosen.get(&entry.slot) {
            Some(value) if *value != entry.value => {
                let why = format!(
                    "agreement violated in slot {}: n{id} applied {} but {} was applied before",
                    entry.slot, entry.value, value
                );
                self.fail(why);
                return;
            }
            Some(_) => {}
            None => {
                if let Value::Config { .. } = entry.value {
                    self.stats.membership_changes += 1;
                }
                self.chosen.insert(entry.slot, entry.value.clone());
            }
        }
        let node = self.nodes.get_mut(&id).expect("node");
        if let Value::Command { id: cmd, data } = &entry.value {
            if *cmd >= MARKER_IDS && self.marker_slot.is_none() {
                self.marker_slot = Some(entry.slot);
            }
            let (key, value) = decode_put(data);
            node.kv.insert(key, value);
            let incarnation = node.incarnation;
            if let Some(w) = self.writes.get(cmd) {
                if w.node == id && w.incarnation == incarnation {
                    let w = self.writes.remove(cmd).expect("present");
                    self.history[w.call].response = self.now;
                    self.stats.writes += 1;
                    self.client_done(w.client);
                }
            }
        }
    }

    fn send(&mut self, env: &crate::Envelope) {
        let vows = self.vows.entry(env.from).or_default();
        match &env.message {
            Message::Promise { ballot, .. } | Message::HeartbeatAck { ballot, .. } => {
                vows.promised = vows.promised.max(*ballot);
            }
            Message::Accepted {
                ballot,
                first,
                last,
            } => {
                vows.promised = vows.promised.max(*ballot);
                for slot in *first..=*last {
                    let b = vows.accepted.entry(slot).or_default();
                    *b = (*b).max(*ballot);
                }
            }
            Message::TimeoutNow { .. } => self.stats.handovers += 1,
            _ => {}
        }
        if self.blocked.contains(&(env.from, env.to)) || self.rng.random_bool(self.cfg.loss) {
            return;
        }
        let mut bytes = codec::encode_message(env);
        let copies = if self.rng.random_bool(self.cfg.duplicate) {
            2
        } else {
            1
        };
        if self.rng.random_bool(self.cfg.corrupt) {
            let bit = self.rng.random_range(0..bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        for _ in 0..copies {
            let delay = self.rng.random_range(self.cfg.delay.0..=self.cfg.delay.1);
            self.schedule(
                delay,
                Event::Deliver {
                    to: env.to,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    fn crash(&mut self, id: NodeId) {
        let now = self.now;
        if self.nodes[&id].replica.is_none() {
            return;
        }
        if let Err(why) = self.check_vows(id) {
            self.fail(why);
        }
        let node = self.nodes.get_mut(&id).expect("node");
        node.replica = None;
        node.persisting = None;
        node.incarnation += 1;
        if let Some((start, ballot, expires)) = node.lease.take() {
            let end = node.clock.true_time(expires).min(now);
            self.leases.push((start, end, id, ballot));
        }
        self.stats.crashes += 1;
    }

    fn restart(&mut self, id: NodeId) {
        let cfg = self.cfg.clone();
        let seed = self.rng.random();
        let node = self.nodes.get_mut(&id).expect("node");
        if node.replica.is_some() {
            return;
        }
        let stored = Stored {
            hard_state: node.disk.hard_state.clone(),
            snapshot: node.disk.snapshot.clone(),
            entries: node.disk.entries.values().cloned().collect(),
        };
        let (applied, kv) = match &node.disk.state {
            Some((applied, data)) => (*applied, decode_kv(data)),
            None => (0, BTreeMap::new()),
        };
        node.kv = kv;
        node.applied = applied;
        let local = node.clock.local(self.now);
        match Replica::recover(replica_config(&cfg, id, seed), &stored, applied, local) {
            Ok(replica) => node.replica = Some(replica),
            Err(e) => {
                self.fail(format!("n{id} failed to restart: {e}"));
                return;
            }
        }
        self.pump(id);
    }

    /// Every node's status, for failure reports.
    pub fn status(&self) -> String {
        let mut lines = Vec::new();
        for node in self.nodes.values() {
            match &node.replica {
                Some(r) => lines.push(format!("  {}", r.status())),
                None => lines.push(format!("  n{}: crashed", node.id)),
            }
        }
        lines.join("\n")
    }
}

/// Command ids from here on are the simulator's marker writes.
const MARKER_IDS: u64 = 1 << 62;

fn replica_config(cfg: &SimConfig, id: NodeId, seed: u64) -> Config {
    let mut c = Config::new(id, 7, 1, seed);
    c.lease_duration = cfg.lease;
    c.heartbeat_interval = cfg.heartbeat;
    c.election_timeout = cfg.election;
    c.max_drift_ppm = cfg.assumed_drift_ppm;
    c.max_batch = 16;
    c
}

/// A write command: `key = value`.
pub fn encode_put(key: u64, value: u64) -> Vec<u8> {
    let mut data = key.to_le_bytes().to_vec();
    data.extend_from_slice(&value.to_le_bytes());
    data
}

fn decode_put(data: &[u8]) -> (u64, u64) {
    let key = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let value = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
    (key, value)
}

fn encode_kv(kv: &BTreeMap<u64, u64>) -> Option<Vec<u8>> {
    postcard::to_allocvec(kv).ok()
}

fn decode_kv(data: &[u8]) -> BTreeMap<u64, u64> {
    if data.is_empty() {
        return BTreeMap::new();
    }
    postcard::from_bytes(data).expect("own snapshot")
}
