//! Multi-Paxos for one replicated group, as a pure state machine.
//!
//! Not written yet: this crate is filled by the Multi-Paxos issue (ballots,
//! prepare/promise once per leadership, accept/accepted per slot, leader
//! leases, catch-up, snapshots, membership changes), following the
//! Ready/advance contract of DESIGN.md. It deliberately exports nothing until
//! then, so no caller can mistake it for a working replica.
