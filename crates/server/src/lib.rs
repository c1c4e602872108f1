//! A Meridian node: the layer that owns every socket, timer, disk write and
//! task. The layers below it (`truetime`, `storage`, `txn`, `paxos`) are pure
//! or passive; the server drives them.
//!
//! So far it holds the system clock ([`clock::SystemClock`]), the only reader
//! of the operating system's time in Meridian, and the embedded
//! single-process database ([`local`]) that `meridian demo` serves, and the
//! durable storage of a Paxos replica ([`paxos_log::PaxosStore`]). Replica
//! drivers, the gRPC services, routing and the transaction coordinator arrive
//! with the issues that build them.

pub mod clock;
pub mod cluster;
pub mod group;
pub mod grpc;
pub mod local;
pub mod net;
pub mod node;
pub mod paxos_log;
pub mod placement;
pub mod rebalance;
pub mod replicas;
pub mod route;
pub mod spans;
pub mod txn_service;
