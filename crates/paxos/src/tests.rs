//! Golden-script tests of the replica (the scripts are in `testscripts/`),
//! over a small manual harness: one true clock shared by every node, a FIFO
//! network delivered on command, synchronous persistence.
//!
//! The DSL (times in milliseconds; `now` starts at 0):
//!
//! ```text
//! cluster nodes=3 [spares=2] [lease=1000] [heartbeat=100] [election=10000]
//!                              voters 1..=nodes; spares start empty (join)
//! campaign 1                   node 1 starts phase 1
//! deliver [from=1] [to=2]      deliver the queued messages (matching ones),
//!                              printing each; new messages wait for the next
//! stabilize                    deliver until nothing is queued
//! tick [ms=100]                advance the clock and tick every live node
//! propose 1 key=value          propose a command at node 1
//! member 1 add=4 | remove=3    propose a membership change at node 1
//! partition 1 [2...]           cut these nodes off from the others
//! cut 1 2                      drop messages from 1 to 2 only
//! heal                         remove every partition and cut
//! crash 2 / restart 2          crash (disk kept) and restart from disk
//! compact 1                    snapshot node 1's state machine at applied
//! corrupt 2 slot=3             flip a bit in node 2's stored entry 3
//! bad 2 kind=K                 send node 2 a bad message; K is one of
//!                              cluster group misrouted unknown impossible
//!                              stale malformed bytes checksum
//! status [1]                   print replicas
//! log [1]                      print replicas with their logs
//! ```
//!
//! After every command the harness prints what changed on each node (role,
//! commit index, lease) and every refused message.
//! Regenerate the expected output with `UPDATE_GOLDENFILES=1 cargo test`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::error::Error as StdError;
use std::fmt::Write as _;

use crate::codec;
use crate::config::{Config, MILLI};
use crate::message::{Envelope, Message};
use crate::replica::{Replica, Stored};
use crate::types::{Ballot, Entry, Membership, MembershipChange, NodeId, Slot, Value};

/// One node of the harness.
struct Node {
    replica: Option<Replica>,
    hard_state: Option<Vec<u8>>,
    snapshot: Option<Vec<u8>>,
    entries: BTreeMap<Slot, Vec<u8>>,
    /// The state machine: the applied commands, as text, by key.
    kv: BTreeMap<String, String>,
    applied: Slot,
    /// The state machine on disk, as of a slot: saved at compaction and
    /// snapshot install.
    saved: Option<(Slot, Vec<u8>)>,
    seed: u64,
}

/// What the harness prints changes of.
#[derive(Clone, PartialEq, Eq)]
struct Seen {
    role: String,
    commit: Slot,
    lease: bool,
    members: String,
}

struct Harness {
    cfg: Config,
    now: u64,
    nodes: BTreeMap<NodeId, Node>,
    queue: VecDeque<Envelope>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    seen: BTreeMap<NodeId, Seen>,
    next_id: u64,
    out: String,
}

impl Harness {
    fn new(voters: u64, spares: u64, cfg: Config) -> Result<Self, Box<dyn StdError>> {
        let mut h = Harness {
            cfg,
            now: 0,
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            blocked: BTreeSet::new(),
            seen: BTreeMap::new(),
            next_id: 1,
            out: String::new(),
        };
        let membership = Membership::new(1..=voters);
        for id in 1..=voters + spares {
            let cfg = h.config(id, id);
            let replica = if id <= voters {
                Replica::bootstrap(cfg, membership.clone(), 0)?
            } else {
                Replica::join(cfg, 0)?
            };
            h.nodes.insert(
                id,
                Node {
                    replica: Some(replica),
                    hard_state: None,
                    snapshot: None,
                    entries: BTreeMap::new(),
                    kv: BTreeMap::new(),
                    applied: 0,
                    saved: None,
                    seed: id,
                },
            );
            h.process(id);
        }
        h.observe();
        h.out.clear();
        Ok(h)
    }

    fn config(&self, id: NodeId, seed: u64) -> Config {
        Config {
            id,
            seed,
            ..self.cfg.clone()
        }
    }

    fn nanos(&self) -> u64 {
        self.now * MILLI
    }

    fn replica(&mut self, id: NodeId) -> Result<&mut Replica, Box<dyn StdError>> {
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| format!("no node {id}"))?
            .replica
            .as_mut()
            .ok_or_else(|| format!("node {id} is down").into())
    }

    /// Runs a node's Ready loop synchronously: persist, queue messages,
    /// apply, advance.
    fn process(&mut self, id: NodeId) {
        loop {
            let node = self.nodes.get_mut(&id).expect("node");
            let Some(replica) = node.replica.as_mut() else {
                return;
            };
            if !replica.has_ready() {
                return;
            }
            let ready = replica.ready();
            self.queue.extend(ready.messages);
            if let Some(snapshot) = &ready.snapshot {
                node.snapshot = Some(codec::encode_snapshot(&snapshot.without_data()));
                node.saved = Some((snapshot.index, snapshot.data.clone()));
                node.kv = if snapshot.data.is_empty() {
                    BTreeMap::new()
                } else {
                    postcard::from_bytes(&snapshot.data).expect("snapshot")
                };
                node.applied = snapshot.index;
                if snapshot.index > 0 {
                    let _ = writeln!(self.out, "n{id} installed snapshot at {}", snapshot.index);
                }
            }
            if let Some(index) = ready.compact {
                node.entries = node.entries.split_off(&(index + 1));
            }
            for entry in &ready.entries {
                node.entries.insert(entry.slot, codec::encode_entry(entry));
            }
            if let Some(hs) = &ready.hard_state {
                node.hard_state = Some(codec::encode_hard_state(hs));
            }
            self.queue.extend(ready.persisted_messages);
            for entry in &ready.committed {
                assert_eq!(entry.slot, node.applied + 1, "in-order delivery");
                node.applied = entry.slot;
                if let Value::Command { data, .. } = &entry.value {
                    let text = String::from_utf8_lossy(data).to_string();
                    let (k, v) = text.split_once('=').unwrap_or((&text, ""));
                    node.kv.insert(k.to_string(), v.to_string());
                }
                let _ = writeln!(self.out, "n{id} applied {entry}");
            }
            let replica = node.replica.as_mut().expect("alive");
            replica.advance();
            for to in ready.snapshot_wanted {
                let data = postcard::to_allocvec(&node.kv).expect("kv encodes");
                replica
                    .send_snapshot(to, node.applied, data)
                    .expect("the applied state is a valid snapshot");
                let _ = writeln!(self.out, "n{id} sends n{to} a snapshot at {}", node.applied);
            }
        }
    }

    /// Prints what changed on each node since the last look.
    fn observe(&mut self) {
        let now = self.nanos();
        for (&id, node) in &self.nodes {
            let seen = match &node.replica {
                Some(r) => Seen {
                    role: match r.role() {
                        crate::RoleKind::Leader => format!("leader b={}", r.promised()),
                        crate::RoleKind::Candidate => "candidate".to_string(),
                        crate::RoleKind::Follower => match r.leader() {
                            Some(l) => format!("follower of {l}"),
                            None => "follower".to_string(),
                        },
                    },
                    commit: r.commit(),
                    lease: r.lease(now).is_some(),
                    members: r.membership().to_string(),
                },
                None => Seen {
                    role: "down".into(),
                    commit: 0,
                    lease: false,
                    members: String::new(),
                },
            };
            let old = self.seen.insert(id, seen.clone());
            let Some(old) = old else { continue };
            if old.role != seen.role {
                let _ = writeln!(self.out, "n{id} is now {}", seen.role);
            }
            if old.lease != seen.lease {
                let what = if seen.lease { "acquired" } else { "lost" };
                let _ = writeln!(self.out, "n{id} lease {what}");
            }
            if old.members != seen.members && !seen.members.is_empty() {
                let _ = writeln!(self.out, "n{id} membership {}", seen.members);
            }
        }
    }

    /// Delivers the queued messages matching the filter, once.
    fn deliver(&mut self, from: Option<NodeId>, to: Option<NodeId>) {
        let batch: Vec<Envelope> = std::mem::take(&mut self.queue).into();
        for env in batch {
            let matches = from.is_none_or(|f| f == env.from) && to.is_none_or(|t| t == env.to);
            if !matches {
                self.queue.push_back(env);
                continue;
            }
            if self.blocked.contains(&(env.from, env.to)) {
                let _ = writeln!(self.out, "{env} [dropped]");
                continue;
            }
            let now = self.nanos();
            let to = env.to;
            let Some(replica) = self.nodes.get_mut(&to).and_then(|n| n.replica.as_mut()) else {
                let _ = writeln!(self.out, "{env} [node down]");
                continue;
            };
            let _ = writeln!(self.out, "{env}");
            let bytes = codec::encode_message(&env);
            if let Err(rejection) = replica.step_bytes(now, &bytes) {
                let _ = writeln!(self.out, "  n{to} {rejection}");
            }
            self.process(to);
        }
    }

    fn restart(&mut self, id: NodeId) -> Result<(), Box<dyn StdError>> {
        let now = self.nanos();
        let node = self.nodes.get(&id).ok_or("no such node")?;
        if node.replica.is_some() {
            return Err(format!("node {id} is up").into());
        }
        let stored = Stored {
            hard_state: node.hard_state.clone(),
            snapshot: node.snapshot.clone(),
            entries: node.entries.values().cloned().collect(),
        };
        let (applied, kv) = match &node.saved {
            Some((slot, data)) if !data.is_empty() => (*slot, postcard::from_bytes(data)?),
            Some((slot, _)) => (*slot, BTreeMap::new()),
            None => (0, BTreeMap::new()),
        };
        let seed = node.seed + 100;
        let cfg = self.config(id, seed);
        let replica = Replica::recover(cfg, &stored, applied, now)?;
        let node = self.nodes.get_mut(&id).expect("node");
        node.seed = seed;
        node.kv = kv;
        node.applied = applied;
        node.replica = Some(replica);
        self.process(id);
        Ok(())
    }

    /// A bad message of kind `kind` for node `to`, as bytes.
    fn bad_message(&self, to: NodeId, kind: &str) -> Result<Vec<u8>, Box<dyn StdError>> {
        let replica = self.nodes[&to].replica.as_ref().ok_or("node down")?;
        let from = if to == 1 { 2 } else { 1 };
        let promised = replica.promised();
        let mut env = Envelope {
            cluster: self.cfg.cluster,
            group: self.cfg.group,
            from,
            to,
            epoch: 0,
            message: Message::Heartbeat {
                ballot: Ballot::new(promised.round + 1, from),
                commit: 0,
                lease_round: 1,
            },
        };
        match kind {
            "cluster" => env.cluster += 1,
            "group" => env.group += 1,
            "misrouted" => env.to += 1,
            "unknown" => env.from = 99,
            "impossible" => {
                env.message = Message::Accept {
                    ballot: Ballot::new(promised.round + 1, from + 1),
                    entries: vec![Entry {
                        slot: 1,
                        ballot: Ballot::new(promised.round + 1, from + 1),
                        value: Value::Noop,
                    }],
                    commit: 0,
                }
            }
            "stale" => {
                let stale = Ballot::new(promised.round.saturating_sub(1), from);
                env.message = Message::Accept {
                    ballot: stale,
                    entries: vec![Entry {
                        slot: 1,
                        ballot: stale,
                        value: Value::Noop,
                    }],
                    commit: 0,
                }
            }
            "malformed" => {
                let b = Ballot::new(promised.round + 1, from);
                env.message = Message::Accept {
                    ballot: b,
                    entries: vec![
                        Entry {
                            slot: 5,
                            ballot: b,
                            value: Value::Noop,
                        },
                        Entry {
                            slot: 7,
                            ballot: b,
                            value: Value::Noop,
                        },
                    ],
                    commit: 0,
                }
            }
            "bytes" => {
                // A frame with a valid checksum around a payload that does
                // not decode.
                let mut bytes = vec![1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
                let crc = crc32fast::hash(&bytes);
                bytes.extend_from_slice(&crc.to_le_bytes());
                return Ok(bytes);
            }
            "checksum" => {
                let mut bytes = codec::encode_message(&env);
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x10;
                return Ok(bytes);
            }
            other => return Err(format!("unknown bad kind {other}").into()),
        }
        Ok(codec::encode_message(&env))
    }

    fn status(&self, only: Option<NodeId>, logs: bool) -> String {
        let mut s = String::new();
        for (&id, node) in &self.nodes {
            if only.is_some_and(|o| o != id) {
                continue;
            }
            match &node.replica {
                Some(r) => {
                    let status = r.status();
                    let mut lines = status.lines();
                    let _ = writeln!(s, "{}", lines.next().unwrap_or(""));
                    if logs {
                        for line in lines {
                            let _ = writeln!(s, "{line}");
                        }
                        let kv: Vec<String> =
                            node.kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        let _ = writeln!(s, "    kv: {{{}}}", kv.join(", "));
                    }
                }
                None => {
                    let _ = writeln!(s, "n{id}: down");
                }
            }
        }
        s
    }
}

struct Runner {
    harness: Option<Harness>,
}

fn parse_node(arg: Option<&str>) -> Result<NodeId, Box<dyn StdError>> {
    Ok(arg.ok_or("node id missing")?.parse()?)
}

/// Takes and parses `key=value`.
fn key<T: std::str::FromStr>(
    args: &mut goldenscript::ArgumentConsumer<'_>,
    key: &str,
) -> Result<Option<T>, Box<dyn StdError>>
where
    T::Err: StdError + 'static,
{
    Ok(args.take_key(key).map(|v| v.parse()).transpose()?)
}

impl goldenscript::Runner for Runner {
    type Command = goldenscript::Command;

    fn run(
        &mut self,
        command: &goldenscript::Command,
        _: &goldenscript::Context,
    ) -> Result<String, Box<dyn StdError>> {
        let mut args = command.consume_args();
        if command.name == "cluster" {
            let voters: u64 = key(&mut args, "nodes")?.unwrap_or(3);
            let spares: u64 = key(&mut args, "spares")?.unwrap_or(0);
            let mut cfg = Config::new(1, 7, 1, 1);
            cfg.lease_duration = key::<u64>(&mut args, "lease")?.unwrap_or(1000) * MILLI;
            cfg.heartbeat_interval = key::<u64>(&mut args, "heartbeat")?.unwrap_or(100) * MILLI;
            cfg.election_timeout = key::<u64>(&mut args, "election")?.unwrap_or(10_000) * MILLI;
            cfg.max_drift_ppm = key(&mut args, "drift_ppm")?.unwrap_or(1000);
            args.reject_next()?;
            self.harness = Some(Harness::new(voters, spares, cfg)?);
            return Ok(String::new());
        }
        let h = self.harness.as_mut().ok_or("no cluster yet")?;
        h.out.clear();
        match command.name.as_str() {
            "campaign" => {
                let id = parse_node(args.next_pos())?;
                args.reject_next()?;
                let now = h.nanos();
                let replica = h.replica(id)?;
                replica.tick(now);
                replica.campaign();
                h.process(id);
            }
            "transfer" => {
                let id = parse_node(args.next_pos())?;
                let target = key(&mut args, "to")?.ok_or("to= expected")?;
                args.reject_next()?;
                let now = h.nanos();
                if let Err(e) = h.replica(id)?.transfer_leadership(now, target) {
                    let _ = writeln!(h.out, "n{id} refused: {e}");
                }
                h.process(id);
            }
            "deliver" => {
                let from = key(&mut args, "from")?;
                let to = key(&mut args, "to")?;
                args.reject_next()?;
                h.deliver(from, to);
            }
            "stabilize" => {
                args.reject_next()?;
                let mut rounds = 0;
                while !h.queue.is_empty() {
                    h.deliver(None, None);
                    rounds += 1;
                    if rounds > 100 {
                        return Err("no quiescence after 100 rounds".into());
                    }
                }
            }
            "tick" => {
                let ms: u64 = key(&mut args, "ms")?.unwrap_or(100);
                args.reject_next()?;
                h.now += ms;
                let now = h.nanos();
                let ids: Vec<NodeId> = h.nodes.keys().copied().collect();
                for id in ids {
                    if let Some(r) = h.nodes.get_mut(&id).and_then(|n| n.replica.as_mut()) {
                        r.tick(now);
                        h.process(id);
                    }
                }
            }
            "propose" => {
                // Several key=value pairs are proposed together: one batch.
                let id = parse_node(args.next_pos())?;
                let mut data = Vec::new();
                while let Some((k, v)) = args.next_key() {
                    data.push(format!("{k}={v}"));
                }
                args.reject_next()?;
                let now = h.nanos();
                for data in data {
                    let cmd = h.next_id;
                    h.next_id += 1;
                    if let Err(e) = h.replica(id)?.propose(now, cmd, data.into_bytes()) {
                        let _ = writeln!(h.out, "n{id} refused: {e}");
                    }
                }
                h.process(id);
            }
            "member" => {
                let id = parse_node(args.next_pos())?;
                let change = match (key(&mut args, "add")?, key(&mut args, "remove")?) {
                    (Some(n), None) => MembershipChange::Add(n),
                    (None, Some(n)) => MembershipChange::Remove(n),
                    _ => return Err("add= or remove= expected".into()),
                };
                args.reject_next()?;
                let now = h.nanos();
                if let Err(e) = h.replica(id)?.propose_membership(now, change) {
                    let _ = writeln!(h.out, "n{id} refused: {e}");
                }
                h.process(id);
            }
            "partition" => {
                let mut cut = BTreeSet::new();
                while let Some(arg) = args.next_pos() {
                    cut.insert(arg.parse::<NodeId>()?);
                }
                let ids: Vec<NodeId> = h.nodes.keys().copied().collect();
                for &a in &ids {
                    for &b in &ids {
                        if cut.contains(&a) != cut.contains(&b) {
                            h.blocked.insert((a, b));
                        }
                    }
                }
            }
            "cut" => {
                let a = parse_node(args.next_pos())?;
                let b = parse_node(args.next_pos())?;
                args.reject_next()?;
                h.blocked.insert((a, b));
            }
            "heal" => {
                args.reject_next()?;
                h.blocked.clear();
            }
            "crash" => {
                let id = parse_node(args.next_pos())?;
                args.reject_next()?;
                h.nodes.get_mut(&id).ok_or("no such node")?.replica = None;
                h.queue.retain(|env| env.from != id);
            }
            "restart" => {
                let id = parse_node(args.next_pos())?;
                args.reject_next()?;
                if let Err(e) = h.restart(id) {
                    let _ = writeln!(h.out, "n{id} failed to restart: {e}");
                }
            }
            "compact" => {
                let id = parse_node(args.next_pos())?;
                args.reject_next()?;
                let node = h.nodes.get_mut(&id).ok_or("no such node")?;
                let data = postcard::to_allocvec(&node.kv)?;
                let applied = node.applied;
                let replica = node.replica.as_mut().ok_or("node down")?;
                let snapshot = replica.compact(applied)?;
                node.saved = Some((applied, data));
                node.snapshot = Some(codec::encode_snapshot(snapshot));
                let _ = writeln!(h.out, "n{id} snapshot at {applied}");
                h.process(id);
            }
            "corrupt" => {
                let id = parse_node(args.next_pos())?;
                let slot: Slot = key(&mut args, "slot")?.ok_or("slot= missing")?;
                args.reject_next()?;
                let node = h.nodes.get_mut(&id).ok_or("no such node")?;
                let record = node.entries.get_mut(&slot).ok_or("no such entry on disk")?;
                let mid = record.len() / 2;
                record[mid] ^= 0x01;
            }
            "bad" => {
                let id = parse_node(args.next_pos())?;
                let kind = args.take_key("kind").ok_or("kind= missing")?;
                args.reject_next()?;
                let bytes = h.bad_message(id, kind)?;
                let now = h.nanos();
                let replica = h.replica(id)?;
                let before = replica.durable_state();
                let result = replica.step_bytes(now, &bytes);
                let unchanged = replica.durable_state() == before;
                match result {
                    Ok(()) => {
                        let _ = writeln!(h.out, "n{id} accepted it");
                    }
                    Err(rejection) => {
                        let _ = writeln!(h.out, "n{id} {rejection}");
                    }
                }
                let _ = writeln!(h.out, "state unchanged: {unchanged}");
                h.process(id);
            }
            "status" | "log" => {
                let only = args.next_pos().map(|a| a.parse()).transpose()?;
                args.reject_next()?;
                let logs = command.name == "log";
                let text = h.status(only, logs);
                h.out.push_str(&text);
                return Ok(std::mem::take(&mut h.out));
            }
            name => return Err(format!("unknown command {name}").into()),
        }
        h.observe();
        Ok(std::mem::take(&mut h.out))
    }
}

/// The directory of the scripts, relative to the crate.
const SCRIPTS: &str = "src/testscripts";

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        const SCRIPT_NAMES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                let path = format!("{SCRIPTS}/{}", stringify!($name));
                goldenscript::run(&mut Runner { harness: None }, &path).expect("goldenscript")
            }
        )*
    };
}

scripts!(
    bad_input,
    catch_up,
    election,
    leader_handover,
    leader_isolation,
    lease_expiry,
    membership_change,
    restart,
    snapshot_install,
);

#[test]
fn every_script_has_a_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(SCRIPTS)
        .expect("scripts dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let listed: Vec<String> = SCRIPT_NAMES.iter().map(|s| s.to_string()).collect();
    assert_eq!(on_disk, listed);
}

/// A leader's proposals that never got a slot are reported as dropped when
/// its leadership ends, so their proposers need not wait for them.
#[test]
fn proposals_without_a_slot_are_dropped_with_the_leadership() {
    use crate::{Config, Envelope, Membership, Replica, MILLI};
    let membership = Membership::new([1, 2, 3]);
    let mut replicas: Vec<Replica> = (1..=3)
        .map(|id| Replica::bootstrap(Config::new(id, 7, 1, id), membership.clone(), 0).unwrap())
        .collect();
    replicas[0].campaign();
    let mut now = 0;
    let mut wire: Vec<Envelope> = Vec::new();
    for _ in 0..200 {
        now += 100 * MILLI;
        for r in &mut replicas {
            r.tick(now);
            while r.has_ready() {
                let ready = r.ready();
                wire.extend(ready.messages);
                wire.extend(ready.persisted_messages);
                r.advance();
            }
        }
        for env in std::mem::take(&mut wire) {
            let to = env.to as usize - 1;
            let _ = replicas[to].step(now, env);
        }
        if replicas[0].lease(now).is_some() {
            break;
        }
    }
    let leader = &mut replicas[0];
    assert!(leader.lease(now).is_some(), "replica 1 leads");
    while leader.has_ready() {
        leader.ready();
        leader.advance();
    }
    leader.propose(now, 41, b"a".to_vec()).unwrap();
    leader.propose(now, 42, b"b".to_vec()).unwrap();
    // Leadership ends before the proposals were flushed into slots.
    leader.campaign();
    let ready = leader.ready();
    assert_eq!(ready.dropped, vec![41, 42]);
    assert!(ready.messages.iter().all(|m| m.message.kind() != "accept"));
    leader.advance();
}
