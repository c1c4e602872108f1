//! The SQL layer: PostgreSQL-dialect SQL over Meridian's transaction API.
//!
//! A [`Session`] takes SQL text (simple protocol) or prepared statements
//! (extended protocol) and runs them in transactions of any
//! [`TxnEngine`](meridian_txn::TxnEngine): the single-process `LocalEngine`
//! in tests, the distributed engine in a cluster. The layer knows nothing of
//! Paxos, RocksDB or the network.
//!
//! ```text
//!  SQL text ──parse.rs──▶ statements (AS OF SYSTEM TIME cut out)
//!     │                         │
//!     │        session.rs / run.rs: transaction state machine, SET/SHOW,
//!     │        implicit and explicit transactions, prepared-plan cache
//!     │                         │
//!     │   bind/ ── names, types, coercions ──▶ plan.rs (operator tree)
//!     │      └── planner.rs: index choice, key spans, order and limit
//!     │                         │
//!     └────────── exec/ ── scans, joins, aggregates, DML, DDL ──▶ Transaction
//!                               │
//!              catalog.rs (descriptors in the keyspace), row.rs (keys and values)
//! ```
//!
//! Module map: [`types`](DataType) (types and values, comparison), `text`
//! (PostgreSQL text input/output), `cast` (casts and contexts), `ops`
//! (operators, promotion, overflow), `functions` and `datetime` (scalar
//! functions), `expr` (bound expressions, three-valued logic), `catalog`
//! (descriptors and catalog keys), `row` (row and index entry encoding),
//! `plan` and `explain` (operator trees and their EXPLAIN form), `planner`
//! (access paths), `bind` (binder), `exec` (executor), `parse`, `session`
//! and `run` (sessions), `ranges` and `split` (`SHOW RANGES`, `ALTER TABLE
//! ... SPLIT AT / RELOCATE`).
//!
//! Invariants the layer keeps:
//!
//! - every read of a read-write transaction locks what it read (shared, or
//!   exclusive for `FOR UPDATE` and the rows `UPDATE`/`DELETE` change),
//!   table descriptors included, so statements are serializable with each
//!   other and with DDL;
//! - every error is a [`meridian_error::Error`] variant of the PostgreSQL
//!   class the same failure has there, with PostgreSQL's message;
//! - an error inside a transaction block aborts the block (25P02 until
//!   `ROLLBACK`); a lost conflict (40001) never leaves partial effects.
//!
//! The design, the key layout and what is left out are described in
//! `docs/architecture/sql.md`.

mod bind;
mod cast;
mod catalog;
mod datetime;
mod exec;
mod explain;
mod expr;
mod functions;
mod ops;
mod parse;
mod plan;
mod planner;
mod ranges;
mod row;
mod run;
mod session;
mod split;
mod text;
mod types;

pub use session::{
    Column, ColumnInfo, IndexInfo, PreparedStatement, QueryResult, Session, TableInfo, TxnStatus,
};
pub use types::{DataType, Interval, Value};
