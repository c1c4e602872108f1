//! The PostgreSQL wire-protocol front end (pgwire).
//!
//! Not written yet: this crate is filled by the SQL issue (sessions, portals,
//! SQLSTATE mapping). It deliberately exports nothing until then.
