//! The Ready/advance contract's data: what the driver must persist, send and
//! apply (see the crate docs for the order).

use std::collections::BTreeMap;

use crate::message::Envelope;
use crate::types::{Ballot, Entry, HardState, Nanos, Slot, Snapshot};

/// Everything the driver must do after a batch of inputs, in this order:
///
/// 1. send [`Ready::messages`] (they may go before or during step 2);
/// 2. persist, atomically and durably (fsync): [`Ready::snapshot`] (install
///    it into the state machine too), delete log entries at or below
///    [`Ready::compact`], write [`Ready::entries`] (each replaces the entry of
///    its slot), write [`Ready::hard_state`];
/// 3. send [`Ready::persisted_messages`] (never before step 2 is durable);
/// 4. apply [`Ready::committed`] to the state machine, in order;
/// 5. call [`crate::Replica::advance`];
/// 6. for each node in [`Ready::snapshot_wanted`], build a snapshot of the
///    state machine as applied and hand it to
///    [`crate::Replica::send_snapshot`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// The hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot received from another replica: persist it and install it
    /// into the state machine (replacing its state) before applying
    /// `committed`. Also the bootstrap membership, at index 0.
    pub snapshot: Option<Snapshot>,
    /// Log entries at or below this slot may be deleted (they are in a
    /// snapshot). Delete before writing `entries`.
    pub compact: Option<Slot>,
    /// Accepted entries to persist, ascending by slot.
    pub entries: Vec<Entry>,
    /// Messages that may be sent at once.
    pub messages: Vec<Envelope>,
    /// Messages that may be sent only after everything above is durable.
    pub persisted_messages: Vec<Envelope>,
    /// Chosen entries to apply, in slot order, with no gap after the last
    /// applied slot (or the installed snapshot).
    pub committed: Vec<Entry>,
    /// Ids of commands proposed here that will never be chosen: the
    /// leadership ended before they were given a slot (no acceptor ever saw
    /// them). Their proposers can be told so at once. A command that got a
    /// slot is never listed: its fate is learned only by applying.
    pub dropped: Vec<u64>,
    /// The leader's lease changed (acquired, extended, or lost).
    pub lease: Option<LeaseUpdate>,
    /// Replicas that need slots this log no longer holds: each is to be
    /// sent a snapshot of the state machine ([`crate::Replica::send_snapshot`]
    /// once this Ready is advanced).
    pub snapshot_wanted: Vec<crate::NodeId>,
}

/// A leader lease, as the leader sees it on its own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The leadership (ballot) holding it.
    pub ballot: Ballot,
    /// The local time at which it ends: the leader acts as leaseholder only
    /// while its clock reads less than this.
    pub expires: Nanos,
}

/// A change of the leader's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseUpdate {
    /// The lease is held until the given expiry.
    Held(Lease),
    /// The lease is no longer held (expired, or the leader stepped down).
    Lost,
}

/// Output gathered between two Readies.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Entries to persist, by slot (a later write of a slot wins).
    pub(crate) entries: BTreeMap<Slot, Entry>,
    /// A received snapshot to persist and install.
    pub(crate) snapshot: Option<Snapshot>,
    /// Compaction point.
    pub(crate) compact: Option<Slot>,
    /// Messages to send at once.
    pub(crate) messages: Vec<Envelope>,
    /// Messages to send after persisting.
    pub(crate) persisted_messages: Vec<Envelope>,
    /// Commands dropped with a leadership, never given a slot.
    pub(crate) dropped: Vec<u64>,
    /// Replicas to send a snapshot to.
    pub(crate) snapshot_wanted: Vec<crate::NodeId>,
}
