//! The deterministic simulation: many seeds of a 3-to-5 replica group under
//! message loss, delay, reordering, duplication, corruption, partitions
//! (including asymmetric ones), crashes that lose unpersisted state, clock
//! drift, membership changes and snapshots, with every checker on each run.
//!
//! - `MERIDIAN_SEED=N` replays one seed (and prints its stats; with
//!   `MERIDIAN_SIM_TRACE=1` also the nodes every 500 ms and every lease);
//! - `MERIDIAN_SEEDS=N` runs N seeds instead of the default (soak runs);
//! - `MERIDIAN_SEED_START=N` starts the range elsewhere.
//!
//! A failure prints the seed, and the seed replays exactly.

use std::time::Instant;

use meridian_paxos::sim::{self, SimConfig};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

/// Runs seeds `start..start+count` of `cfg` on two threads; panics with
/// every failing seed.
fn run_seeds(name: &str, cfg: &SimConfig, default_count: u64) {
    if let Some(seed) = env_u64("MERIDIAN_SEED") {
        let cfg = &SimConfig {
            trace: std::env::var_os("MERIDIAN_SIM_TRACE").is_some(),
            ..cfg.clone()
        };
        match sim::run(seed, cfg) {
            Ok(stats) => {
                println!("{name}: seed {seed} passed: {stats:?}");
                return;
            }
            Err(e) => panic!("{name}: {e}\nreplay: MERIDIAN_SEED={seed} cargo test -p meridian-paxos --test simulation {name}"),
        }
    }
    let count = env_u64("MERIDIAN_SEEDS").unwrap_or(default_count);
    let start = env_u64("MERIDIAN_SEED_START").unwrap_or(0);
    let t0 = Instant::now();
    let threads = 2;
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut failures = Vec::new();
                    let mut seed = start + t;
                    while seed < start + count {
                        if let Err(e) = sim::run(seed, cfg) {
                            failures.push(e);
                        }
                        seed += threads;
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    });
    println!(
        "{name}: {count} seeds in {:.1}s, {} failed",
        t0.elapsed().as_secs_f64(),
        failures.len()
    );
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().take(5).collect();
        panic!(
            "{name}: {} of {count} seeds failed; first ones:\n{}\nreplay one with MERIDIAN_SEED=N cargo test -p meridian-paxos --test simulation {name}",
            failures.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}

/// The main run: 3 voters and 2 spares, every fault, membership changes,
/// leadership hand-overs.
#[test]
fn chaos() {
    let cfg = SimConfig {
        handover: 0.1,
        ..SimConfig::default()
    };
    run_seeds("chaos", &cfg, 2000);
}

/// Five voters, a lossier network, no spares.
#[test]
fn five_voters() {
    let cfg = SimConfig {
        voters: 5,
        spares: 0,
        loss: 0.15,
        ..SimConfig::default()
    };
    run_seeds("five_voters", &cfg, 200);
}

/// Lease handovers as tight as the protocol allows, under extreme drift.
#[test]
fn lease_handover() {
    run_seeds("lease_handover", &SimConfig::lease_handover(), 300);
}

/// A seed replays exactly.
#[test]
fn a_seed_replays_exactly() {
    let cfg = SimConfig::default();
    for seed in [3, 17] {
        assert_eq!(sim::run(seed, &cfg), sim::run(seed, &cfg));
    }
}

/// Without faults a stable leader keeps committing.
#[test]
fn a_calm_group_makes_progress() {
    let cfg = SimConfig {
        loss: 0.0,
        duplicate: 0.0,
        corrupt: 0.0,
        fault_interval: 1_000 * meridian_paxos::SECOND,
        crash_mid_promise: 0.0,
        ..SimConfig::default()
    };
    let stats = sim::run(1, &cfg).expect("a calm run passes");
    assert!(stats.writes > 150, "{stats:?}");
    assert!(stats.reads > 150, "{stats:?}");
    assert_eq!(stats.leases, 1, "one leadership: {stats:?}");
}

/// Leaders asked to hand over, and nothing else going wrong: each hand-over
/// completes without waiting out a lease, and the group keeps committing.
#[test]
fn a_calm_group_hands_its_leadership_over() {
    let cfg = SimConfig {
        loss: 0.0,
        duplicate: 0.0,
        corrupt: 0.0,
        handover: 1.0,
        fault_interval: 400 * meridian_paxos::MILLI,
        crash_mid_promise: 0.0,
        ..SimConfig::default()
    };
    let stats = sim::run(1, &cfg).expect("a calm run passes");
    assert!(stats.handovers >= 10, "{stats:?}");
    assert!(stats.leases > stats.handovers, "{stats:?}");
    assert!(stats.writes > 150, "{stats:?}");
    assert!(stats.reads > 150, "{stats:?}");
}

/// The checkers can fail: clocks drifting far beyond the bound the
/// replicas assume break the lease margin, and the lease checker sees the
/// overlap.
#[test]
fn drift_beyond_the_bound_is_caught() {
    let cfg = SimConfig {
        drift_ppm: 300_000,
        assumed_drift_ppm: 1_000,
        ..SimConfig::lease_handover()
    };
    let caught = (0..150)
        .filter_map(|seed| sim::run(seed, &cfg).err())
        .filter(|e| e.contains("leases overlap"))
        .count();
    assert!(caught > 0, "no overlap detected in 150 seeds");
}
