//! Protocol tests of the wire layer over a scripted backend.
//!
//! These tests start the connection machinery on a loopback port with
//! [`script::Script`] as the session — a tiny, predictable stand-in for the
//! SQL layer — and talk to it with tokio-postgres, with a raw protocol client
//! (for malformed messages, text formats and exact transaction statuses) and
//! with psql. They pin down the protocol behaviour independently of the SQL
//! engine; `tests/` repeats the important ones over the real engine.

mod raw;
mod script;
mod server;
mod wire;
