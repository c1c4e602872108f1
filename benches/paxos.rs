//! Paxos state-machine throughput: the CPU cost of the protocol alone.
//!
//! Three `meridian_paxos::Replica`s in memory, messages handed from one to
//! another directly (no IO, no encoding, nothing persisted). After an
//! election, each iteration proposes a batch of commands at the leader and
//! runs the Ready/advance loop of all three until every command is committed
//! at the leader and the followers have accepted them.
//!
//! - `paxos/commit_batch/N`: N commands of 100 bytes per iteration; the
//!   throughput line reports commands per second.
//!
//! Run with `cargo bench -p meridian-benches --bench paxos`.

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meridian_paxos::{Config, Envelope, Membership, Nanos, Replica, MILLI};

/// Three replicas and the messages in flight between them.
struct Group {
    replicas: Vec<Replica>,
    wire: VecDeque<Envelope>,
    now: Nanos,
    next_id: u64,
}

impl Group {
    fn new() -> Group {
        let membership = Membership::new([1, 2, 3]);
        let replicas = (1..=3)
            .map(|id| Replica::bootstrap(Config::new(id, 7, 1, id), membership.clone(), 0).unwrap())
            .collect();
        let mut group = Group {
            replicas,
            wire: VecDeque::new(),
            now: 0,
            next_id: 0,
        };
        group.replicas[0].campaign();
        // Restarted acceptors refuse to promise for a lease: let time pass.
        for _ in 0..200 {
            group.now += 100 * MILLI;
            for r in &mut group.replicas {
                r.tick(group.now);
            }
            group.settle();
            if group.replicas[0].lease(group.now).is_some() {
                return group;
            }
        }
        panic!("no leader");
    }

    /// Runs every replica's Ready/advance loop and delivers messages until
    /// the network is quiet.
    fn settle(&mut self) {
        loop {
            let mut progressed = false;
            for r in &mut self.replicas {
                while r.has_ready() {
                    let ready = r.ready();
                    self.wire.extend(ready.messages);
                    self.wire.extend(ready.persisted_messages);
                    black_box(&ready.committed);
                    r.advance();
                    progressed = true;
                }
            }
            while let Some(env) = self.wire.pop_front() {
                let to = env.to as usize - 1;
                let _ = self.replicas[to].step(self.now, env);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    fn commit_batch(&mut self, n: usize) {
        let target = self.replicas[0].commit() + n as u64;
        for _ in 0..n {
            self.next_id += 1;
            self.replicas[0]
                .propose(self.now, self.next_id, vec![7; 100])
                .unwrap();
        }
        self.settle();
        assert!(self.replicas[0].commit() >= target);
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("paxos/commit_batch");
    for n in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut paxos = Group::new();
            b.iter(|| paxos.commit_batch(n));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
