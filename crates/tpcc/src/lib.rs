//! TPC-C: loader, driver and consistency checker for any Postgres-wire endpoint.
//!
//! Not written yet: this crate is filled by the TPC-C issue. It deliberately
//! exports nothing until then.
