//! A [`LocalEngine`]'s side of two-phase commit (Spanner §4.2.1): the
//! participant's prepare and outcome, the coordinator's commit, the
//! resolution of a transaction whose coordinator went quiet, and the
//! restoration of prepared transactions at a new leader.
//!
//! **Prepare.** The transaction is marked prepared in the lock table (from
//! then on it cannot be wounded and keeps every lock), picks a prepare
//! timestamp `p` above every timestamp the engine issued, and hands the
//! replication a [`PrepareRecord`]: its writes, its locks (shared ones too:
//! a read must stay protected until the commit timestamp is chosen, and a
//! new leader takes them again from the record) and its start timestamp.
//! `p` joins the commits in flight: reads at or above it wait until the
//! outcome is applied, so the engine's safe time stays below `p`.
//!
//! **Decide.** The outcome is logged; a commit applies the writes at `s`
//! (which the coordinator chose at or above `p`) and raises the engine's
//! issued timestamps to `s`, so that the transactions that take the locks
//! next commit after it. Then `p` leaves the in-flight set and the locks go.
//! Deciding a transaction the engine does not know is a no-op: outcomes may
//! arrive twice (from the coordinator and from a resolution).
//!
//! **Read-only votes.** A participant that wrote nothing logs nothing: it
//! is marked prepared (never wounded), keeps its locks in memory and votes
//! [`Vote::ReadOnly`] with the bound on timestamps its replication gives
//! (the end of the leader's lease); the commit timestamp must be below it.
//! Its outcome only releases the locks, which also go by themselves once
//! `TT.after(until)` ([`LocalEngine::expire_read_only_votes`]); see the
//! `two_phase` module for why that is safe.
//!
//! **Coordinator.** The coordinator's own part commits like a single-group
//! transaction at `s >= max(p)` and below every read-only voter's bound,
//! its commit record also recording the outcome; if a participant's
//! resolution recorded an abort first, the commit fails and nothing is
//! written.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use meridian_error::{Error, Result};
use meridian_storage::Engine;
use meridian_truetime::Timestamp;

use super::{CommitFuture, Inner, LocalEngine, LocalTxn};
use crate::api::TxnMode;
use crate::lock_table::TxnId;
use crate::two_phase::{GlobalTxnId, Outcome, PrepareRecord, Vote};

/// A transaction prepared at this engine, waiting for its outcome.
#[derive(Clone, Debug)]
pub(super) struct PreparedTxn {
    /// Its id in the lock table.
    txn: TxnId,
    /// What was logged.
    record: Arc<PrepareRecord>,
}

/// A read-only vote: a transaction holding shared locks here until its
/// outcome, or until `until` passes.
#[derive(Clone, Copy, Debug)]
pub(super) struct ReadOnlyVote {
    /// Its id in the lock table.
    txn: TxnId,
    /// Its coordinator group.
    coordinator: u64,
    /// When it voted.
    voted_at: Timestamp,
    /// The bound the commit timestamp must stay below.
    pub(super) until: Option<Timestamp>,
}

/// A prepared transaction as [`LocalEngine::prepared`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreparedInfo {
    /// The transaction.
    pub gid: GlobalTxnId,
    /// Its coordinator group.
    pub coordinator: u64,
    /// Its prepare timestamp (for a read-only vote: when it voted).
    pub prepare_ts: Timestamp,
    /// Whether it is a read-only vote (nothing logged).
    pub read_only: bool,
}

impl<E: Engine + 'static> LocalTxn<E> {
    /// Two-phase commit's first phase at a participant: logs the
    /// transaction's writes and locks at a prepare timestamp and returns it.
    /// The transaction then waits, locks held, for [`LocalEngine::decide`].
    /// `coordinator` is the group whose log will hold the outcome.
    ///
    /// A read-only transaction cannot prepare. A failure leaves the
    /// transaction aborted here (an ambiguous one may have logged the
    /// record: its outcome is then settled by resolution, and can only be
    /// an abort, since the coordinator never heard a yes).
    pub async fn prepare(mut self, gid: GlobalTxnId, coordinator: u64) -> Result<Vote> {
        if self.mode != TxnMode::ReadWrite {
            return Err(Error::InvalidInput(
                "a read-only transaction has nothing to prepare".into(),
            ));
        }
        let inner = self.inner.clone();
        self.mark_prepared()?;
        if self.writes.is_empty() {
            let until = inner.replication.admit()?;
            // Under the timestamp lock, so that a hand-over sees every vote
            // given before it or refuses this one.
            let clock = inner.clock.lock().expect("clock lock poisoned");
            clock.check_serving()?;
            inner
                .read_only_votes
                .lock()
                .expect("votes poisoned")
                .insert(
                    gid,
                    ReadOnlyVote {
                        txn: self.id,
                        coordinator,
                        voted_at: inner.tt.now().latest,
                        until,
                    },
                );
            self.finished = true;
            return Ok(Vote::ReadOnly { until });
        }
        let mut record = PrepareRecord {
            gid,
            coordinator,
            start_ts: self.start_ts,
            prepare_ts: Timestamp::MIN,
            writes: std::mem::take(&mut self.writes),
            locks: inner.locks.held_by(self.id),
        };
        let (p, logged) = inner.issue_in_flight(Timestamp::MIN, None, |p| {
            record.prepare_ts = p;
            inner.replication.prepare(record.clone())
        })?;
        let record = Arc::new(record);
        let in_flight = InFlight::new(inner.clone(), p);
        settle(async move {
            // On a failure `p` ends and the locks go: the record, if it
            // reaches the log at all, can only be aborted.
            logged.await?;
            // From here the prepared table holds `p` in flight until decided.
            in_flight.hand_over();
            inner.hold_prepared(self.id, record);
            // The locks now belong to the prepared transaction.
            self.disown();
            Ok(Vote::Prepared { prepare_ts: p })
        })
        .await
    }

    /// The coordinator's commit: writes this group's part at a commit
    /// timestamp `s >= min_ts` (the largest prepare timestamp) and below
    /// `below` (the smallest bound of the read-only votes) that also
    /// records the outcome of `gid`, then commit-waits. Fails with
    /// [`Error::Aborted`] if a resolution recorded an abort of `gid` first,
    /// or (retryably, logging nothing) if no such `s` is left.
    pub async fn commit_as_coordinator(
        self,
        gid: GlobalTxnId,
        min_ts: Timestamp,
        below: Option<Timestamp>,
    ) -> Result<Timestamp> {
        if self.mode != TxnMode::ReadWrite {
            return Err(Error::InvalidInput(
                "a read-only transaction cannot coordinate a commit".into(),
            ));
        }
        self.commit_at(min_ts, below, Some(gid)).await
    }

    /// Marks the transaction prepared in the lock table: past this point it
    /// cannot be wounded.
    fn mark_prepared(&mut self) -> Result<()> {
        self.inner.check_not_wounded(self.id)?;
        if let Err(err) = self.inner.locks.prepare(self.id) {
            self.inner.check_not_wounded(self.id)?;
            return Err(err);
        }
        Ok(())
    }

    /// Commits the buffered writes at `s >= min_ts`, below `below`
    /// (recording the outcome of `decides`), waits out commit wait and
    /// releases the locks.
    ///
    /// Once the record is handed to the replication it may apply whether
    /// anyone waits for it or not, so the rest runs in a task of its own
    /// ([`settle`]): a caller that stops waiting (a cancelled statement, a
    /// dropped call) cannot release the locks, or end `s` in flight, before
    /// the record is applied. Whether an ambiguous record will apply is
    /// unknown, so its locks and `s` stay until this leadership ends.
    pub(super) async fn commit_at(
        mut self,
        min_ts: Timestamp,
        below: Option<Timestamp>,
        decides: Option<GlobalTxnId>,
    ) -> Result<Timestamp> {
        self.mark_prepared()?;
        let writes = std::mem::take(&mut self.writes);
        let (s, written) = self
            .inner
            .issue_and_commit(self.id, writes, min_ts, below, decides)?;
        // `s` stays in flight through commit wait: a snapshot read at or
        // above it must not see the writes before `TT.after(s)` (Spanner
        // §4.1.2), or a later reader with a lower timestamp would miss what
        // an earlier one saw.
        let in_flight = InFlight::new(self.inner.clone(), s);
        settle(async move {
            if let Err(err) = written.await {
                if let Error::AmbiguousCommit(_) = err {
                    let inner = self.inner.clone();
                    tokio::spawn(inner.hold_while_leading((self, in_flight)));
                }
                return Err(err);
            }
            self.inner.commit_wait(s).await;
            drop(in_flight);
            self.release();
            Ok(s)
        })
        .await
    }
}

/// Runs `work`, the rest of a commit or prepare whose record is on its way
/// to the log, in a task of its own and waits for it: whoever waits may
/// give up, the work goes on (see [`LocalTxn::commit_at`]).
async fn settle<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        // The runtime is shutting down: the record's fate is unknown.
        Err(err) => Err(Error::AmbiguousCommit(format!(
            "the commit's task was cancelled: {err}"
        ))),
    }
}

impl<E: Engine + 'static> LocalEngine<E> {
    /// Two-phase commit's second phase at a participant: logs `outcome` for
    /// the prepared transaction `gid`, applies it and releases its locks.
    /// A transaction not prepared here (decided already) is left alone.
    pub async fn decide(&self, gid: GlobalTxnId, outcome: Outcome) -> Result<()> {
        let inner = &self.inner;
        let vote = inner
            .read_only_votes
            .lock()
            .expect("votes poisoned")
            .remove(&gid);
        if let Some(vote) = vote {
            inner.locks.release_all(vote.txn);
            return Ok(());
        }
        let Some(prepared) = inner
            .prepared
            .lock()
            .expect("prepared table poisoned")
            .get(&gid)
            .cloned()
        else {
            return Ok(());
        };
        inner.log_outcome(&prepared.record, outcome)?.await?;
        if let Outcome::Committed(s) = outcome {
            // Its writes are applied at `s`: once it is no longer prepared,
            // strong reads read at or above it (`LastTS()`).
            inner.note_finished(s);
        }
        let removed = inner
            .prepared
            .lock()
            .expect("prepared table poisoned")
            .remove(&gid);
        if removed.is_some() {
            inner.finish_commit(prepared.record.prepare_ts);
            inner.locks.release_all(prepared.txn);
        }
        tracing::debug!(%gid, ?outcome, "decided");
        Ok(())
    }

    /// Logs `outcome` for a prepare record this engine does not hold: one
    /// whose proposal was ambiguous here (its prepare failed, so no lock or
    /// timestamp of it was kept) yet reached the log. Its outcome can only
    /// be what resolution says (an abort: the coordinator never heard its
    /// vote); a commit is applied all the same. Held records go through
    /// [`LocalEngine::decide`].
    pub async fn decide_unheld(&self, record: &PrepareRecord, outcome: Outcome) -> Result<()> {
        let inner = &self.inner;
        if inner
            .prepared
            .lock()
            .expect("prepared table poisoned")
            .contains_key(&record.gid)
        {
            return self.decide(record.gid, outcome).await;
        }
        inner.log_outcome(record, outcome)?.await?;
        if let Outcome::Committed(s) = outcome {
            inner.note_finished(s);
        }
        tracing::info!(gid = %record.gid, ?outcome, "decided a prepare record held by no engine");
        Ok(())
    }

    /// At the coordinator group's leader: the outcome of `gid`, aborting it
    /// first if it is undecided. Participants ask this about a prepared
    /// transaction whose outcome did not come.
    pub async fn resolve(&self, gid: GlobalTxnId) -> Result<Outcome> {
        self.inner.replication.admit()?;
        self.inner.replication.resolve(gid).await
    }

    /// Takes over a transaction prepared under an earlier leader, from its
    /// logged record: its locks are taken again (the engine must be new:
    /// nobody else holds locks yet) and its prepare timestamp holds reads
    /// back, until [`LocalEngine::decide`].
    pub fn restore_prepared(&self, record: PrepareRecord) -> Result<()> {
        let inner = &self.inner;
        let gid = record.gid;
        if inner
            .prepared
            .lock()
            .expect("prepared table poisoned")
            .contains_key(&gid)
        {
            return Ok(());
        }
        let txn = TxnId(inner.next_txn.fetch_add(1, Ordering::Relaxed));
        inner.locks.begin(txn, record.priority())?;
        let now = inner.tt.now().earliest;
        for (target, mode) in &record.locks {
            let wait = inner
                .locks
                .acquire(txn, target.clone(), *mode, now, Timestamp::MAX)?;
            if !wait.is_granted_now() {
                inner.locks.release_all(txn);
                return Err(Error::Internal(format!(
                    "prepared transaction {gid}: its lock on {target:?} is held by another \
                     transaction of a new leader"
                )));
            }
        }
        inner.locks.prepare(txn)?;
        {
            let mut clock = inner.clock.lock().expect("clock lock poisoned");
            clock.last = clock.last.max(record.prepare_ts);
            clock.in_flight.insert(record.prepare_ts);
        }
        inner.hold_prepared(txn, Arc::new(record));
        Ok(())
    }

    /// The prepare record of `gid`, while it is prepared here.
    pub fn prepare_record(&self, gid: GlobalTxnId) -> Option<PrepareRecord> {
        self.inner
            .prepared
            .lock()
            .expect("prepared table poisoned")
            .get(&gid)
            .map(|p| (*p.record).clone())
    }

    /// The transactions prepared here and not decided yet, read-only votes
    /// included.
    pub fn prepared(&self) -> Vec<PreparedInfo> {
        let mut list: Vec<PreparedInfo> = self
            .inner
            .prepared
            .lock()
            .expect("prepared table poisoned")
            .values()
            .map(|p| PreparedInfo {
                gid: p.record.gid,
                coordinator: p.record.coordinator,
                prepare_ts: p.record.prepare_ts,
                read_only: false,
            })
            .collect();
        list.extend(
            self.inner
                .read_only_votes
                .lock()
                .expect("votes poisoned")
                .iter()
                .map(|(gid, vote)| PreparedInfo {
                    gid: *gid,
                    coordinator: vote.coordinator,
                    prepare_ts: vote.voted_at,
                    read_only: true,
                }),
        );
        list.sort_by_key(|p| p.prepare_ts);
        list
    }

    /// Releases the locks of read-only votes whose bound has passed
    /// (`TT.after(until)`): whatever the outcome, its timestamp is below
    /// the bound, so every later write lands after it. Returns how many.
    pub fn expire_read_only_votes(&self) -> usize {
        let inner = &self.inner;
        let expired: Vec<TxnId> = {
            let mut votes = inner.read_only_votes.lock().expect("votes poisoned");
            let mut expired = Vec::new();
            votes.retain(|_, vote| match vote.until {
                Some(until) if inner.tt.after(until) => {
                    expired.push(vote.txn);
                    false
                }
                _ => true,
            });
            expired
        };
        for txn in &expired {
            inner.locks.release_all(*txn);
        }
        expired.len()
    }
}

/// A timestamp in flight (a commit or prepare not applied yet), which holds
/// back reads at or above it until the guard is dropped, or handed over.
pub(super) struct InFlight<E: Engine> {
    /// The engine.
    inner: Arc<Inner<E>>,
    /// The timestamp (`None` once handed over).
    ts: Option<Timestamp>,
}

impl<E: Engine> InFlight<E> {
    /// Guards `ts`, already in `inner`'s in-flight set.
    pub(super) fn new(inner: Arc<Inner<E>>, ts: Timestamp) -> Self {
        InFlight {
            inner,
            ts: Some(ts),
        }
    }

    /// Leaves `ts` in flight: someone else ends it.
    fn hand_over(mut self) {
        self.ts = None;
    }
}

impl<E: Engine> Drop for InFlight<E> {
    fn drop(&mut self) {
        if let Some(ts) = self.ts.take() {
            self.inner.finish_commit(ts);
        }
    }
}

/// How often an engine holding an ambiguous commit's locks looks whether
/// it still leads.
const HOLD_POLL: std::time::Duration = std::time::Duration::from_millis(50);

impl<E: Engine> Inner<E> {
    /// Keeps `held` (an ambiguous commit's transaction and timestamp) while
    /// the engine may serve: its record may still apply, and until then
    /// its locks must not let another transaction read what it overwrote.
    /// Once the engine no longer serves, nobody reads through it.
    async fn hold_while_leading<T>(self: Arc<Self>, held: T) {
        while self.replication.admit().is_ok() {
            self.sleeper.sleep(HOLD_POLL).await;
        }
        drop(held);
    }

    /// Keeps `record`'s transaction (lock table id `txn`) prepared until
    /// its outcome.
    fn hold_prepared(&self, txn: TxnId, record: Arc<PrepareRecord>) {
        self.prepared
            .lock()
            .expect("prepared table poisoned")
            .insert(record.gid, PreparedTxn { txn, record });
    }

    /// Hands `record`'s outcome to the replication (the engine must still
    /// serve). A commit raises the issued timestamps to `s`, so that the
    /// transactions taking its locks next commit after it.
    fn log_outcome(&self, record: &PrepareRecord, outcome: Outcome) -> Result<CommitFuture> {
        self.replication.admit()?;
        let mut clock = self.clock.lock().expect("clock lock poisoned");
        clock.check_serving()?;
        if let Outcome::Committed(s) = outcome {
            if s < record.prepare_ts {
                return Err(Error::Internal(format!(
                    "transaction {}: commit timestamp {s} below its prepare timestamp {}",
                    record.gid, record.prepare_ts
                )));
            }
            clock.last = clock.last.max(s);
        }
        Ok(self.replication.decide(record, outcome))
    }

    /// Waits until `TT.after(s)` (commit wait) and counts the time it took.
    async fn commit_wait(&self, s: Timestamp) {
        let sleeper = self.sleeper.clone();
        let waiting_since = self.tt.now().earliest;
        self.tt.commit_wait(s, move |d| sleeper.sleep(d)).await;
        let waited = self.tt.now().earliest.duration_since(waiting_since);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_wait_nanos
            .fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
    }
}
