//! Criterion benchmarks of Meridian's layers; see `docs/benchmarks.md`.
