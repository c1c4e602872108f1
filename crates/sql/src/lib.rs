//! The SQL front end: sqlparser → plan → execution over the transaction API.
//!
//! Not written yet: this crate is filled by the SQL issue (catalog, types,
//! planner, executor). It deliberately exports nothing until then.
