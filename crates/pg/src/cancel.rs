//! Query cancellation: `BackendKeyData` and `CancelRequest`.
//!
//! PostgreSQL cancels out of band. At startup every connection is given a
//! process id and a secret key (`BackendKeyData`). To cancel, a client opens a
//! *new* connection and sends a `CancelRequest` with that pair; the server
//! interrupts whatever statement the first connection is running, which then
//! fails with SQLSTATE `57014`, and closes the new connection without a word.
//!
//! Here every connection owns a [`CancelSlot`] registered in the server-wide
//! [`CancelRegistry`] under its process id. While a statement runs, the slot
//! holds the sending half of a one-shot channel; the connection races the
//! session's future against the receiving half, so a cancel drops the
//! statement's future at its next await point (a lock wait, a storage read,
//! commit wait). A cancel that arrives while the connection is idle finds an
//! empty slot and does nothing, as in PostgreSQL.
//!
//! The secret key is compared before anything happens, so a stranger who
//! guesses a process id cannot cancel other people's queries. Keys come from
//! the standard library's per-process random hasher keys (no RNG dependency).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The cancel hook of one connection.
#[derive(Debug, Default)]
pub(crate) struct CancelSlot {
    /// Fires the running statement's cancel signal; `None` while idle.
    running: Mutex<Option<oneshot::Sender<()>>>,
}

impl CancelSlot {
    /// Arms the slot for a statement about to run; the receiver completes
    /// when a cancel request arrives for it.
    pub fn arm(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        *self.running.lock().expect("cancel slot poisoned") = Some(tx);
        rx
    }

    /// Disarms the slot once the statement is over; a late cancel is a no-op.
    pub fn disarm(&self) {
        self.running.lock().expect("cancel slot poisoned").take();
    }

    /// Cancels the running statement, if any.
    fn fire(&self) {
        if let Some(tx) = self.running.lock().expect("cancel slot poisoned").take() {
            let _ = tx.send(());
        }
    }
}

/// The connections that can be cancelled, by process id.
#[derive(Debug)]
pub(crate) struct CancelRegistry {
    /// Process id -> (secret key, the connection's slot).
    slots: Mutex<HashMap<i32, (i32, Arc<CancelSlot>)>>,
    /// The next process id to hand out.
    next_pid: AtomicI32,
    /// Random keys for secret generation.
    random: RandomState,
}

impl Default for CancelRegistry {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            next_pid: AtomicI32::new(10_000),
            random: RandomState::new(),
        }
    }
}

impl CancelRegistry {
    /// Registers a new connection: its process id, secret key and slot. The
    /// returned guard unregisters it when dropped.
    pub fn register(self: &Arc<Self>) -> CancelGuard {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let mut hasher = self.random.build_hasher();
        hasher.write_i32(pid);
        let key = hasher.finish() as i32;
        let slot = Arc::new(CancelSlot::default());
        self.slots
            .lock()
            .expect("cancel registry poisoned")
            .insert(pid, (key, slot.clone()));
        CancelGuard {
            registry: self.clone(),
            pid,
            key,
            slot,
        }
    }

    /// Handles a `CancelRequest`: cancels `pid`'s running statement if the key
    /// matches. Returns whether the request was accepted.
    pub fn cancel(&self, pid: i32, key: i32) -> bool {
        let slot = match self
            .slots
            .lock()
            .expect("cancel registry poisoned")
            .get(&pid)
        {
            Some((k, slot)) if *k == key => slot.clone(),
            _ => return false,
        };
        slot.fire();
        true
    }
}

/// A connection's registration; unregisters on drop.
#[derive(Debug)]
pub(crate) struct CancelGuard {
    /// Where it is registered.
    registry: Arc<CancelRegistry>,
    /// The process id sent in `BackendKeyData`.
    pub pid: i32,
    /// The secret key sent in `BackendKeyData`.
    pub key: i32,
    /// The connection's slot.
    pub slot: Arc<CancelSlot>,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.registry
            .slots
            .lock()
            .expect("cancel registry poisoned")
            .remove(&self.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_needs_the_key_and_a_running_statement() {
        let registry = Arc::new(CancelRegistry::default());
        let a = registry.register();
        let b = registry.register();
        assert_ne!(a.pid, b.pid);

        // Idle: accepted, but nothing to cancel, and nothing left armed.
        assert!(registry.cancel(a.pid, a.key));
        let mut rx = a.slot.arm();
        assert!(rx.try_recv().is_err());

        // Wrong key: refused.
        assert!(!registry.cancel(a.pid, a.key.wrapping_add(1)));
        assert!(rx.try_recv().is_err());

        // Right key while running: fires.
        assert!(registry.cancel(a.pid, a.key));
        assert_eq!(rx.try_recv(), Ok(()));

        // A disarmed slot ignores late cancels; dropped guards unregister.
        let mut rx = b.slot.arm();
        b.slot.disarm();
        assert!(registry.cancel(b.pid, b.key));
        assert!(rx.try_recv().is_err());
        let pid = b.pid;
        let key = b.key;
        drop(b);
        assert!(!registry.cancel(pid, key));
    }
}
