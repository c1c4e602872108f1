//! The Postgres-style Rust client for Meridian.
//!
//! Not written yet: this crate is filled by the TPC-C and client issue
//! (connect string, queries, prepared statements, pool, and a
//! `transaction(|tx| ...)` helper that retries SQLSTATE 40001 with backoff).
//! It deliberately exports nothing until then.
