//! A replica's configuration: identity, timing and limits.

use crate::types::{Nanos, NodeId};

/// One millisecond in [`Nanos`].
pub const MILLI: Nanos = 1_000_000;
/// One second in [`Nanos`].
pub const SECOND: Nanos = 1_000 * MILLI;

/// How a replica is set up. Durations are in nanoseconds of the replica's
/// own clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This replica's node id.
    pub id: NodeId,
    /// The cluster id: messages from other clusters are refused.
    pub cluster: u64,
    /// The group id: messages about other groups are refused.
    pub group: u64,
    /// Seed of the replica's RNG (election timeout jitter). Give each replica
    /// and each restart a different seed.
    pub seed: u64,
    /// How long a lease lasts on the granting acceptor's clock (default 10 s).
    pub lease_duration: Nanos,
    /// The bound on clock drift: every replica's clock runs at a rate within
    /// `1 ± max_drift_ppm / 10^6` of true time. The leader's usable lease is
    /// shortened by it (see [`Config::leader_lease`]).
    pub max_drift_ppm: u64,
    /// How often the leader sends heartbeats (lease extension, commit
    /// notification, retransmission of unacknowledged accepts).
    pub heartbeat_interval: Nanos,
    /// A follower that has heard no leader for a random time in
    /// `[election_timeout, 2 * election_timeout)` campaigns.
    pub election_timeout: Nanos,
    /// At most this many entries in one accept, catch-up or promise batch.
    pub max_batch: usize,
    /// At most this many slots proposed and not yet chosen; further
    /// proposals wait in the leader's queue.
    pub max_inflight: u64,
}

impl Config {
    /// A configuration with the defaults: 10 s leases, 1000 ppm drift bound,
    /// 500 ms heartbeats, 3 s election timeout.
    pub fn new(id: NodeId, cluster: u64, group: u64, seed: u64) -> Self {
        Config {
            id,
            cluster,
            group,
            seed,
            lease_duration: 10 * SECOND,
            max_drift_ppm: 1_000,
            heartbeat_interval: 500 * MILLI,
            election_timeout: 3 * SECOND,
            max_batch: 256,
            max_inflight: 4096,
        }
    }

    /// The lease a leader may count on its own clock after sending a lease
    /// request: `lease_duration * (1 - ρ) / (1 + ρ)`, rounded down, with
    /// `ρ = max_drift_ppm / 10^6`.
    ///
    /// An acceptor grants `lease_duration` on its clock from the moment it
    /// receives the request, which is at least `lease_duration / (1 + ρ)` of
    /// true time after the request was sent. The leader's clock measures
    /// `leader_lease` in at most `leader_lease / (1 - ρ)` of true time, so the
    /// leader's lease ends (in true time) no later than every grant that made
    /// it.
    pub fn leader_lease(&self) -> Nanos {
        let ppm = u128::from(self.max_drift_ppm.min(999_999));
        let l = u128::from(self.lease_duration);
        (l * (1_000_000 - ppm) / (1_000_000 + ppm)) as Nanos
    }

    /// Checks the configuration for values that cannot work.
    pub fn validate(&self) -> meridian_error::Result<()> {
        let bad = |what: &str| {
            Err(meridian_error::Error::InvalidInput(format!(
                "paxos config: {what}"
            )))
        };
        if self.id == 0 {
            return bad("node id 0 is reserved");
        }
        if self.max_drift_ppm >= 1_000_000 {
            return bad("max_drift_ppm must be below 10^6");
        }
        if self.heartbeat_interval == 0 || self.election_timeout == 0 || self.lease_duration == 0 {
            return bad("intervals must be positive");
        }
        if self.heartbeat_interval >= self.leader_lease() {
            return bad("heartbeats must come well within the leader's lease");
        }
        if self.max_batch == 0 || self.max_inflight == 0 {
            return bad("batch and in-flight limits must be positive");
        }
        Ok(())
    }
}
