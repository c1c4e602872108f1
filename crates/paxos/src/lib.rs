//! Multi-Paxos for one replicated group, as a pure state machine.
//!
//! A [`Replica`] is one acceptor/learner/proposer of a group of 3 or 5. It
//! does no IO, reads no clock and uses no global RNG: messages, local time
//! (nanoseconds of the replica's own monotonic clock) and a seed come in;
//! what to persist, what to send and what is committed come out, as one
//! [`Ready`]. The driver (the server, or [`sim`] in tests) does the IO.
//! The long design note is `docs/architecture/paxos.md`.
//!
//! # Protocol (Lamport, "Paxos Made Simple" §2–3)
//!
//! - **Ballots** ([`Ballot`]) are `(round, node)`: totally ordered, each owned
//!   by one node.
//! - **Phase 1, once per leadership.** A candidate sends `Prepare(b, commit)`
//!   to the acceptors; each promises never to accept a lower ballot and
//!   reports every entry it holds above the candidate's commit index, marking
//!   those it knows chosen. With a majority (of every membership that may
//!   govern an open slot, see *Membership*), the candidate leads: per slot it
//!   keeps a value known chosen, else the highest-ballot value, and fills
//!   holes with [`Value::Noop`]; it re-proposes all of them in its ballot.
//! - **Phase 2, per slot.** The leader batches proposals into one
//!   `Accept(b, entries)` per peer; acceptors with no higher promise store
//!   them and answer `Accepted`. A slot is chosen when a majority of the
//!   membership governing it accepted it in one ballot. The commit index is
//!   the chosen prefix.
//! - **Commit notification.** Accepts and heartbeats carry the leader's
//!   commit index. A follower commits a slot up to it only if its entry there
//!   was accepted in the leader's ballot (so it is the leader's value);
//!   otherwise it fetches the chosen entries (`CatchUpRequest`).
//! - **In-order delivery.** [`Ready::committed`] holds the chosen entries
//!   after the last delivered one, in slot order, never with a gap.
//! - **Stale leaders** get a `Nack` carrying the higher promise. A leader that
//!   is nacked campaigns again at once with a higher ballot (its own lease
//!   grants keep others out, so it is back in one round trip).
//!
//! # The Ready/advance contract (persist before send)
//!
//! After any input ([`Replica::step`], [`Replica::tick`],
//! [`Replica::propose`], ...), while [`Replica::has_ready`], the driver calls
//! [`Replica::ready`] and then, in this order:
//!
//! 1. sends [`Ready::messages`]: they vouch for nothing unpersisted (prepares,
//!    accepts and heartbeats of the leader, nacks, catch-up traffic), so they
//!    may go before or while the state is written;
//! 2. persists atomically and durably (fsync): the snapshot
//!    ([`Ready::snapshot`], also installed into the state machine), deletes
//!    log entries up to [`Ready::compact`], writes [`Ready::entries`] and
//!    [`Ready::hard_state`] (promised ballot, commit index), all encoded with
//!    the checksummed [`codec`];
//! 3. only then sends [`Ready::persisted_messages`]: promises, accepted and
//!    heartbeat acknowledgements, each a vow about durable state;
//! 4. applies [`Ready::committed`] in order (after step 2: a committed entry
//!    may have arrived in this very Ready);
//! 5. calls [`Replica::advance`]. The replica's answers to itself (its own
//!    promise, its own acceptance) count only from here, so a leader never
//!    counts itself in a quorum for state it has not persisted;
//! 6. for each node in [`Ready::snapshot_wanted`], builds a snapshot of its
//!    state machine as applied and hands it to [`Replica::send_snapshot`].
//!
//! A driver must not call `ready` again before `advance`. It may keep
//! stepping messages and ticking while a Ready is being persisted; their
//! output goes into the next Ready. A crash anywhere loses nothing that
//! step 3 vouched for.
//!
//! # Using it
//!
//! - [`Replica::bootstrap`] (a founding voter), [`Replica::join`] (a node
//!   about to be added), [`Replica::recover`] (restart from [`Stored`]
//!   records);
//! - inputs: [`Replica::tick`] with the local time, [`Replica::step`] /
//!   [`Replica::step_bytes`] for messages (refusals come back as
//!   [`Rejection`]s), [`Replica::propose`] and
//!   [`Replica::propose_membership`] on the leader, [`Replica::compact`]
//!   when the driver's state machine durably holds the slots to truncate
//!   ([`Replica::compaction_point`] and [`Replica::log_bytes`] help choose
//!   when and where), [`Replica::send_snapshot`] when asked,
//!   [`Replica::campaign`] to start an election now;
//! - outputs: [`Replica::ready`] / [`Replica::advance`]; queries such as
//!   [`Replica::can_serve_reads`], [`Replica::lease`], [`Replica::leader`];
//! - [`codec`] encodes messages and durable records with checksums.
//!
//! # Leader leases
//!
//! A leader's every `Heartbeat` is a lease request: a numbered *round*,
//! stamped with the leader's local send time `s`. An acceptor that takes it
//! (its ballot is not below the acceptor's promise) *grants* it: it records
//! `(leader, receipt + lease_duration)` on its own clock and, until then,
//! refuses to promise any *other* node (it answers `LeaseHeld` with the time
//! left and changes nothing). The leader holds its lease until
//! `s + leader_lease` on its own clock, for the latest round that a majority
//! of every active membership granted, where
//! `leader_lease = lease_duration * (1 - ρ) / (1 + ρ)` and `ρ` is
//! [`Config::max_drift_ppm`] ([`Config::leader_lease`]). It acts as
//! leaseholder (serves reads, takes proposals) only inside that lease
//! ([`Replica::can_serve_reads`], [`Replica::lease`]). Promises grant
//! nothing (so rival candidates never lock each other out): a new leader's
//! first lease comes with its first heartbeat, sent as phase 1 completes.
//! A heartbeat of round 0 is a commit notification that requests no lease.
//!
//! **Invariant (lease disjointness).** If every replica's clock runs at a
//! rate within `1 ± ρ` of true time, then at every instant of true time at
//! most one replica holds a valid lease.
//!
//! *Argument.* (1) A lease from round `r` ends, in true time, no later than
//! every grant of `r`: a grant starts at receipt, after the send, and lasts
//! at least `lease_duration / (1 + ρ)` of true time; the leader's lease
//! lasts at most `leader_lease / (1 - ρ)`, which is no more. (2) A replica
//! holds one role at a time, and a lease only as leader. (3) Let `L2` be a
//! leader elected after `L1` (a higher ballot). `L2` holds no lease before
//! its phase 1 completed, i.e. before a majority `Q` promised its ballot.
//! Any round `r` of `L1` that a majority `R` granted shares an acceptor `a`
//! with `Q` (memberships one change apart have intersecting majorities, see
//! *Membership*). Once `a` has promised `L2`'s ballot it nacks `L1`'s
//! heartbeats, so it granted `r` before it promised; and it does not promise
//! another node while its grant runs. So `L1`'s lease from `r` ended before
//! `a` promised, before `L2`'s lease can start. (4) An acceptor that
//! restarts has forgotten its grants, so it promises nobody (itself
//! included) for `lease_duration` after a restart. (5) A heartbeat the
//! acceptor takes may replace a grant to another node: its sender finished
//! phase 1, so by (3) the older leases are over.
//!
//! A candidate refused with `LeaseHeld` asks again when the lease it was
//! told of has run out: this is how a new leader "waits out" every older
//! lease, without any clock of its own being trusted. The simulator checks
//! the invariant in true time, with clocks drifting up to the bound.
//!
//! # Leader hand-over
//!
//! Waiting a lease out is right when a leader dies, but slow (a whole
//! `lease_duration`) when a live leader should move, e.g. to balance load.
//! [`Replica::transfer_leadership`] hands the leadership to another voter
//! `T` without that wait:
//!
//! 1. the leader stops taking proposals and heartbeats at once (a new lease
//!    round);
//! 2. once every slot it proposed is chosen and `T` answered that round
//!    having committed them all, the leader **steps down** (its lease ends
//!    then, on its own clock, and it never leads in that ballot `b` again)
//!    and only then sends `T` a `TimeoutNow(b)`;
//! 3. `T` campaigns at once, its prepares naming `b` (`handover`). An
//!    acceptor whose grant is held by `b`'s node and whose promise is still
//!    `b` promises although the grant runs: the lease it protects is over.
//!    Any other grant still blocks.
//!
//! If that does not complete within one `election_timeout`, the leader
//! leads on (it still holds its lease, having sent nothing). A lost
//! `TimeoutNow` costs an election: the old leader is the only node its
//! grants let campaign, after its election timeout.
//!
//! *Why the invariant holds.* Step (3) of the argument above changes only
//! for the promises made on a hand-over. The leases of `b` ended when the
//! leader stepped down, before `T`'s prepares existed. A grant the acceptor
//! made in a later ballot `b' > b` of the same node raised its promise to
//! `b'`, so it is not overridden; and a later leadership needs a majority
//! of promises and grants like any other.
//!
//! # Catch-up and snapshots
//!
//! A replica that lacks chosen entries (it missed accepts, restarted, or was
//! partitioned) sends `CatchUpRequest(from)` to the leader (or to any replica
//! that told it a higher commit index); it gets the chosen entries in
//! batches, or a snapshot if the sender's log no longer has them. The
//! driver truncates the log when it likes with [`Replica::compact`], once
//! its state machine durably holds the slots truncated. The replica keeps
//! only the snapshot's index and membership, never the state machine's
//! data: when a replica needs truncated slots, the sender lists it in
//! [`Ready::snapshot_wanted`] (at most once per election timeout) and its
//! driver builds a snapshot of its state machine as applied and passes it to
//! [`Replica::send_snapshot`]. So the replica's memory is the log above the
//! snapshot, which the driver bounds by compacting. A candidate that meets
//! an acceptor whose log is truncated above its own commit index gives up
//! the election and catches up first.
//!
//! # Membership
//!
//! A change ([`Replica::propose_membership`]) adds or removes one voter and
//! is a log entry; the membership it sets governs the slots **after** it.
//! The leader proposes nothing beyond the change until the change is chosen,
//! and accepts no second change while one is in flight. Memberships that
//! differ by one voter have intersecting majorities, which gives the overlap
//! used above. A candidate's phase 1 needs a majority of its committed
//! membership **and** of every membership in a change it holds or that a
//! promise reports above its commit index: each chosen change was accepted
//! by a majority of the membership before it, so the candidate discovers the
//! whole chain of changes that may govern open slots and hears from a
//! majority of each. A leader removed from the membership steps down once
//! the change is chosen; a node added starts with [`Replica::join`] and
//! learns the group's state by catch-up.
//!
//! # Bad input
//!
//! [`Replica::step`] refuses, with a [`Rejection`] the driver logs and no
//! change of state, a message from another cluster or group, misaddressed,
//! from a node in no known membership (unless it names a newer membership
//! epoch than ours), with an impossible ballot (not owned by its sender,
//! round 0, or a response to a ballot we never used), with a stale ballot
//! (answered with a `Nack`), or malformed ([`Replica::step_bytes`]: bytes
//! that fail to decode or their checksum; bodies that break a structural
//! rule). A durable record that fails its checksum at [`Replica::recover`]
//! is [`meridian_error::Error::Corruption`]: the replica refuses to start.
//!
//! # Left out
//!
//! Read-only replicas (learners that never vote), flow control beyond
//! [`Config::max_inflight`], and streaming of large snapshots in chunks: a
//! snapshot travels as one message.

mod acceptor;
mod candidate;
pub mod codec;
mod config;
mod leader;
mod log;
mod message;
mod ready;
mod replica;
pub mod sim;
mod types;

#[cfg(test)]
mod tests;

pub use config::{Config, MILLI, SECOND};
pub use message::{Envelope, Message, RejectReason, Rejection};
pub use ready::{Lease, LeaseUpdate, Ready};
pub use replica::{Replica, RoleKind, Stored};
pub use types::{
    Ballot, Entry, HardState, Membership, MembershipChange, Nanos, NodeId, Slot, Snapshot, Value,
};
