//! The driver: terminals bound to a home warehouse and district, each
//! drawing transaction types from a shuffled deck (clause 5.2.4.2), and
//! the measurements of clause 5.4 (tpmC, response-time percentiles).
//!
//! Two modes. [`Mode::Throughput`]: one terminal per connection, no keying
//! or think times (not a spec run; the number to compare databases by).
//! [`Mode::Spec`]: ten terminals per warehouse, one connection each, with
//! the keying times of clause 5.2.5.7 and negative-exponential think
//! times of clause 5.2.5.4 (capped at ten times the mean); efficiency is
//! tpmC / (12.86 × W).
//!
//! Each completed transaction that touched a warehouse other than its
//! terminal's is counted as remote; when the WAREHOUSE table shows one
//! range per warehouse ([`crate::placement`]), one whose warehouses are in
//! different groups is also counted as cross-group (it committed with
//! two-phase commit across those groups).
//!
//! Delivery is deferred (clause 2.7.2): the terminal queues the request
//! and its response time is the queuing; delivery agents (one per ten
//! terminals, each with a connection of its own) run the queue, and the
//! report gives their count, skipped districts and the time from queuing
//! to completion. Requests still queued when the run ends are run before
//! the report, for at most [`DRAIN_TIMEOUT`].
//!
//! A run starts with a ramp-up ([`RunOptions::ramp_up`]): terminals run
//! the mix, but only transactions completed after it count (the
//! measurement interval of clause 5.5.1 is the `duration` that follows).
//! With [`RunOptions::delivery_log`], each deferred Delivery is written to
//! a result file (clause 2.7.2.3): when it was queued and completed, its
//! warehouse and carrier, and the order delivered in each district or
//! `skipped`.
//!
//! Left out: the 90th percentile response-time limits of clause 5.2.5.3
//! (reported, not enforced), and the mix minimums enforced on the measured
//! interval (the deck guarantees them per 23 transactions).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_client::{Client, Config, Error, Result};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::placement;
use crate::random::{Constants, Gen};
use crate::txn::{DeliveryRequest, Kind, Outcome, Ran, Terminal};
use crate::Scale;

/// How to drive the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No keying or think times, `connections` terminals.
    Throughput,
    /// Keying and think times per clause 5.2.5, ten terminals per warehouse.
    Spec,
}

/// The deck of clause 5.2.4.2: 100 cards, 45 New-Order, 43 Payment and 4
/// each of Order-Status, Delivery and Stock-Level, which meets the
/// minimums of clause 5.2.3 (43% Payment, 4% of each of the small ones)
/// over every deck.
pub fn deck() -> Vec<Kind> {
    let mut deck = vec![Kind::NewOrder; 45];
    deck.extend([Kind::Payment; 43]);
    deck.extend([Kind::OrderStatus; 4]);
    deck.extend([Kind::Delivery; 4]);
    deck.extend([Kind::StockLevel; 4]);
    deck
}

/// Draws transaction types from repeatedly shuffled decks.
pub struct Deck {
    cards: Vec<Kind>,
    next: usize,
}

impl Deck {
    /// A deck, to be shuffled on first draw.
    pub fn new() -> Deck {
        let cards = deck();
        let next = cards.len();
        Deck { cards, next }
    }

    /// The next card, reshuffling when the deck is used up.
    pub fn draw(&mut self, rng: &mut impl Rng) -> Kind {
        if self.next == self.cards.len() {
            self.cards.shuffle(rng);
            self.next = 0;
        }
        self.next += 1;
        self.cards[self.next - 1]
    }
}

impl Default for Deck {
    fn default() -> Self {
        Deck::new()
    }
}

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The endpoint.
    pub url: String,
    /// Warehouses loaded.
    pub warehouses: i32,
    /// Connections (= terminals) in throughput mode.
    pub connections: usize,
    /// Measurement duration.
    pub duration: Duration,
    /// How long the terminals run before the measurement starts.
    pub ramp_up: Duration,
    /// Where to write the deferred Deliveries' results, if anywhere.
    pub delivery_log: Option<std::path::PathBuf>,
    /// The mode.
    pub mode: Mode,
    /// The scale the database was loaded at.
    pub scale: Scale,
    /// How often to print a progress line (None: never).
    pub progress: Option<Duration>,
}

/// Per-transaction-type results.
#[derive(Clone, Debug, Default)]
pub struct KindStats {
    /// Completed transactions (committed, or rolled back on purpose).
    pub count: u64,
    /// New-Orders rolled back on purpose.
    pub rolled_back: u64,
    /// Transactions that failed with an error.
    pub errors: u64,
    /// Completed transactions that touched another warehouse.
    pub remote: u64,
    /// Completed transactions whose warehouses are in different groups.
    pub cross_group: u64,
    /// Response times of completed transactions.
    pub latencies: Vec<Duration>,
}

impl KindStats {
    /// The `p`-th percentile (0..=100) response time.
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }

    /// Adds `other`'s counts and times (another terminal's) to these.
    fn absorb(&mut self, other: KindStats) {
        self.count += other.count;
        self.rolled_back += other.rolled_back;
        self.errors += other.errors;
        self.remote += other.remote;
        self.cross_group += other.cross_group;
        self.latencies.extend(other.latencies);
    }
}

/// The `p`-th percentile (0..=100) of `latencies`.
fn percentile(latencies: &[Duration], p: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    let mut v = latencies.to_vec();
    v.sort();
    let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[i.clamp(1, v.len()) - 1]
}

/// How many error messages a terminal or agent keeps as samples.
const SAMPLE_ERRORS: usize = 3;
/// How many a report keeps.
const REPORT_ERRORS: usize = 5;

/// Counts the failure `e` of a `what` transaction on `client`: in the live
/// counters, as one of `samples` while there is room, and reconnecting a
/// connection it lost.
async fn failed(
    live: &Live,
    samples: &mut Vec<String>,
    what: &str,
    e: &Error,
    client: &mut Client,
) {
    live.errors.fetch_add(1, Ordering::Relaxed);
    if samples.len() < SAMPLE_ERRORS {
        samples.push(format!("{what}: {}", describe(e)));
    }
    if matches!(e, Error::ConnectionLost(_)) || client.is_closed() {
        let _ = client.reconnect().await;
    }
}

/// Adds `more` error samples to a report's, while there is room.
fn keep_samples(samples: &mut Vec<String>, more: Vec<String>) {
    let room = REPORT_ERRORS.saturating_sub(samples.len());
    samples.extend(more.into_iter().take(room));
}

/// What the delivery agents did (clause 2.7.2).
#[derive(Clone, Debug, Default)]
pub struct DeferredStats {
    /// Deliveries run.
    pub done: u64,
    /// Districts they skipped (no undelivered order).
    pub skipped: u64,
    /// Deliveries that failed.
    pub errors: u64,
    /// Deliveries still queued when [`DRAIN_TIMEOUT`] ran out (not run).
    pub undone: u64,
    /// Time from queuing to completion of each one run.
    pub latencies: Vec<Duration>,
}

impl DeferredStats {
    /// Adds `other`'s counts and times (another agent's) to these.
    fn absorb(&mut self, other: DeferredStats) {
        self.done += other.done;
        self.skipped += other.skipped;
        self.errors += other.errors;
        self.undone += other.undone;
        self.latencies.extend(other.latencies);
    }
}

/// How long queued Deliveries may still run once the terminals stopped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How many Deliveries may wait in the queue; a terminal queuing one more
/// waits (its response time shows it).
const DELIVERY_QUEUE: usize = 10_000;

/// A Delivery waiting for an agent.
struct Queued {
    request: DeliveryRequest,
    queued_at: Instant,
}

/// The results of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Per kind, indexed like [`Kind::ALL`].
    pub kinds: Vec<KindStats>,
    /// Retried attempts (serialization failures etc.).
    pub retries: u64,
    /// Wall time measured.
    pub elapsed: Duration,
    /// Warehouses.
    pub warehouses: i32,
    /// Mode.
    pub mode: Mode,
    /// The first few error messages.
    pub sample_errors: Vec<String>,
    /// The group of each warehouse (index `w - 1`), when the warehouses
    /// are in ranges of their own; `None` otherwise (and on PostgreSQL).
    pub warehouse_groups: Option<Vec<i64>>,
    /// The deferred Deliveries (the Delivery row above is their queuing).
    pub deferred: DeferredStats,
}

impl Report {
    /// Committed New-Orders per minute.
    pub fn tpmc(&self) -> f64 {
        let ns = &self.kinds[Kind::NewOrder.index()];
        (ns.count - ns.rolled_back) as f64 * 60.0 / self.elapsed.as_secs_f64()
    }

    /// Total errors.
    pub fn errors(&self) -> u64 {
        self.kinds.iter().map(|k| k.errors).sum::<u64>() + self.deferred.errors
    }

    /// Completed transactions that touched another warehouse.
    pub fn remote(&self) -> u64 {
        self.kinds.iter().map(|k| k.remote).sum()
    }

    /// Completed transactions whose warehouses are in different groups,
    /// when the warehouses' groups are known.
    pub fn cross_group(&self) -> Option<u64> {
        self.warehouse_groups
            .as_ref()
            .map(|_| self.kinds.iter().map(|k| k.cross_group).sum())
    }

    /// A human-readable table.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let total: u64 = self.kinds.iter().map(|k| k.count).sum();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let _ = writeln!(
            s,
            "{:<13} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6}",
            "transaction", "count", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "errors", "mix%"
        );
        for kind in Kind::ALL {
            let k = &self.kinds[kind.index()];
            let share = if total > 0 {
                k.count as f64 * 100.0 / total as f64
            } else {
                0.0
            };
            let _ = writeln!(
                s,
                "{:<13} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>6.1}",
                kind.name(),
                k.count,
                ms(k.percentile(50.0)),
                ms(k.percentile(90.0)),
                ms(k.percentile(95.0)),
                ms(k.percentile(99.0)),
                k.errors,
                share
            );
        }
        let no = &self.kinds[Kind::NewOrder.index()];
        let _ = writeln!(s, "New-Order rollbacks: {}", no.rolled_back);
        let d = &self.deferred;
        let _ = writeln!(
            s,
            "deferred Deliveries: {} run ({} districts skipped), {} failed, {} not run; \
             queued to done p50 {:.1} ms, p90 {:.1} ms",
            d.done,
            d.skipped,
            d.errors,
            d.undone,
            ms(percentile(&d.latencies, 50.0)),
            ms(percentile(&d.latencies, 90.0))
        );
        let pct = |n: u64| {
            if total > 0 {
                n as f64 * 100.0 / total as f64
            } else {
                0.0
            }
        };
        let remote = self.remote();
        let _ = writeln!(
            s,
            "remote-warehouse transactions: {remote} ({:.1}%)",
            pct(remote)
        );
        match (self.cross_group(), &self.warehouse_groups) {
            (Some(cross), Some(groups)) => {
                let mut distinct = groups.clone();
                distinct.sort_unstable();
                distinct.dedup();
                let _ = writeln!(
                    s,
                    "cross-group transactions: {cross} ({:.1}%; warehouses over groups {distinct:?})",
                    pct(cross)
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "cross-group transactions: unknown (warehouses not in ranges of their own)"
                );
            }
        }
        let _ = writeln!(s, "retries: {}", self.retries);
        let _ = writeln!(s, "errors: {}", self.errors());
        let _ = writeln!(s, "elapsed: {:.1}s", self.elapsed.as_secs_f64());
        let _ = write!(s, "tpmC: {:.1}", self.tpmc());
        if self.mode == Mode::Spec {
            let eff = self.tpmc() / (12.86 * self.warehouses as f64) * 100.0;
            let _ = write!(s, "  efficiency: {eff:.1}%");
        }
        s.push('\n');
        for e in &self.sample_errors {
            let _ = writeln!(s, "error: {e}");
        }
        s
    }
}

/// Keying and mean think time of clause 5.2.5.7 / 5.2.5.4.
fn keying_and_think(kind: Kind) -> (Duration, f64) {
    match kind {
        Kind::NewOrder => (Duration::from_secs(18), 12.0),
        Kind::Payment => (Duration::from_secs(3), 12.0),
        Kind::OrderStatus => (Duration::from_secs(2), 10.0),
        Kind::Delivery => (Duration::from_secs(2), 5.0),
        Kind::StockLevel => (Duration::from_secs(2), 5.0),
    }
}

/// The think time for uniform `r` in `(0, 1)`: `-ln(r) × mean`, capped
/// at ten times the mean (clause 5.2.5.4).
pub fn think_time(kind: Kind, r: f64) -> Duration {
    let (_, mean) = keying_and_think(kind);
    Duration::from_secs_f64((-r.ln() * mean).min(mean * 10.0))
}

/// Attempts per transaction before it is reported as an error.
pub const MAX_ATTEMPTS: u32 = 50;

/// Shared live counters for progress lines.
struct Live {
    done: [AtomicU64; 5],
    errors: AtomicU64,
    retries: AtomicU32,
    stop: AtomicBool,
}

/// Runs the mix for `opts.duration` and reports.
pub async fn run(opts: &RunOptions) -> Result<Report> {
    let terminals = match opts.mode {
        Mode::Throughput => opts.connections.max(1),
        Mode::Spec => opts.warehouses as usize * 10,
    };
    let run_c = Constants::run(&mut rand::rng(), Constants::LOAD);
    let live = Arc::new(Live {
        done: Default::default(),
        errors: AtomicU64::new(0),
        retries: AtomicU32::new(0),
        stop: AtomicBool::new(false),
    });
    // Conflicts are frequent with few warehouses (every Payment updates its
    // warehouse row): allow more retries than the client's default before
    // a transaction counts as an error.
    let config = Config::new(&opts.url)?.max_attempts(MAX_ATTEMPTS);
    let mut clients = Vec::with_capacity(terminals);
    for _ in 0..terminals {
        clients.push(Client::connect_with(config.clone()).await?);
    }
    let warehouse_groups = match clients.first() {
        Some(client) => placement::warehouse_groups(client, opts.warehouses).await,
        None => None,
    };
    let mut agent_clients = Vec::new();
    for _ in 0..terminals.div_ceil(10) {
        agent_clients.push(Client::connect_with(config.clone()).await?);
    }
    let delivery_log = match &opts.delivery_log {
        Some(path) => Some(Arc::new(DeliveryLog::create(path)?)),
        None => None,
    };
    let start = Instant::now();
    let measure_from = start + opts.ramp_up;
    let deadline = measure_from + opts.duration;
    let (queue, requests) = tokio::sync::mpsc::channel::<Queued>(DELIVERY_QUEUE);
    let requests = Arc::new(tokio::sync::Mutex::new(requests));
    let agents: Vec<_> = agent_clients
        .into_iter()
        .map(|client| {
            let requests = requests.clone();
            let live = live.clone();
            let log = delivery_log.clone();
            let (warehouses, scale) = (opts.warehouses, opts.scale);
            let window = (start, measure_from, deadline);
            tokio::spawn(async move {
                let agent = Agent {
                    live: &live,
                    warehouses,
                    scale,
                    window,
                    log: log.as_deref(),
                };
                agent.run(client, &requests).await
            })
        })
        .collect();
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let w = opts.warehouses.max(1) as usize;
        let w_id = (i % w) as i32 + 1;
        let d_id = ((i / w) % 10) as i32 + 1;
        let live = live.clone();
        let (warehouses, scale, mode) = (opts.warehouses, opts.scale, opts.mode);
        let groups = warehouse_groups.clone();
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut gen = Gen::new(run_c);
            let mut deck = Deck::new();
            let mut stats = vec![KindStats::default(); 5];
            let mut ramping = KindStats::default();
            let mut sample_errors = Vec::new();
            let term = Terminal {
                warehouses,
                w_id,
                d_id,
                scale,
                retries: &live.retries,
            };
            while Instant::now() < deadline && !live.stop.load(Ordering::Relaxed) {
                let kind = deck.draw(gen.rng());
                if mode == Mode::Spec {
                    let (keying, _) = keying_and_think(kind);
                    if !sleep_until_or(deadline, keying).await {
                        break;
                    }
                }
                let t0 = Instant::now();
                let result = if kind == Kind::Delivery {
                    let request = term.delivery_request(&mut gen);
                    queue
                        .send(Queued {
                            request,
                            queued_at: t0,
                        })
                        .await
                        .map(|()| Ran::home())
                        .map_err(|_| Error::abort("the delivery queue is closed"))
                } else {
                    term.run(&mut client, &mut gen, kind).await
                };
                let latency = t0.elapsed();
                // Only what completes in the measurement interval counts.
                let k = if Instant::now() >= measure_from {
                    &mut stats[kind.index()]
                } else {
                    &mut ramping
                };
                match result {
                    Ok(Ran { outcome, remote }) => {
                        k.count += 1;
                        if outcome == Outcome::RolledBack {
                            k.rolled_back += 1;
                        }
                        if !remote.is_empty() {
                            k.remote += 1;
                        }
                        if let Some(groups) = &groups {
                            let home = groups[w_id as usize - 1];
                            if remote.iter().any(|&w| groups[w as usize - 1] != home) {
                                k.cross_group += 1;
                            }
                        }
                        k.latencies.push(latency);
                        live.done[kind.index()].fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        k.errors += 1;
                        failed(&live, &mut sample_errors, kind.name(), &e, &mut client).await;
                    }
                }
                if mode == Mode::Spec {
                    let r: f64 = gen.rng().random_range(f64::MIN_POSITIVE..1.0);
                    if !sleep_until_or(deadline, think_time(kind, r)).await {
                        break;
                    }
                }
            }
            (stats, sample_errors)
        }));
    }
    let progress = opts.progress.map(|every| {
        let live = live.clone();
        tokio::spawn(async move {
            let mut last = [0u64; 5];
            loop {
                tokio::time::sleep(every).await;
                if live.stop.load(Ordering::Relaxed) {
                    return;
                }
                let now: Vec<u64> = live
                    .done
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .collect();
                let no = now[0] - last[0];
                let tpm = no as f64 * 60.0 / every.as_secs_f64();
                let total: u64 = now.iter().sum();
                let phase = if Instant::now() < measure_from {
                    "  (ramp-up)"
                } else {
                    ""
                };
                eprintln!(
                    "[{:>5.0}s] tpmC {:>9.1}  txns {:>8}  retries {:>6}  errors {:>5}{phase}",
                    start.elapsed().as_secs_f64(),
                    tpm,
                    total,
                    live.retries.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed)
                );
                last.copy_from_slice(&now);
            }
        })
    });
    let mut kinds = vec![KindStats::default(); 5];
    let mut sample_errors = Vec::new();
    for task in tasks {
        let (stats, errs) = task.await.expect("terminal panicked");
        for (into, from) in kinds.iter_mut().zip(stats) {
            into.absorb(from);
        }
        keep_samples(&mut sample_errors, errs);
    }
    let elapsed = measure_from.elapsed();
    live.stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        p.abort();
    }
    // The terminals are done: once the agents empty the queue, they end.
    drop(queue);
    let mut deferred = DeferredStats::default();
    for agent in agents {
        let (stats, errs) = agent.await.expect("delivery agent panicked");
        deferred.absorb(stats);
        keep_samples(&mut sample_errors, errs);
    }
    Ok(Report {
        kinds,
        retries: live.retries.load(Ordering::Relaxed) as u64,
        elapsed,
        warehouses: opts.warehouses,
        mode: opts.mode,
        sample_errors,
        warehouse_groups,
        deferred,
    })
}

/// A delivery agent: runs queued Deliveries until the queue is closed and
/// empty; past the deadline + [`DRAIN_TIMEOUT`] it only counts them.
struct Agent<'a> {
    live: &'a Live,
    warehouses: i32,
    scale: Scale,
    /// The run's start, the measurement's start, and its deadline.
    window: (Instant, Instant, Instant),
    log: Option<&'a DeliveryLog>,
}

impl Agent<'_> {
    async fn run(
        &self,
        mut client: Client,
        requests: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Queued>>,
    ) -> (DeferredStats, Vec<String>) {
        let (start, measure_from, deadline) = self.window;
        let mut stats = DeferredStats::default();
        let mut sample_errors = Vec::new();
        loop {
            let next = requests.lock().await.recv().await;
            let Some(Queued { request, queued_at }) = next else {
                return (stats, sample_errors);
            };
            if Instant::now() > deadline + DRAIN_TIMEOUT {
                stats.undone += 1;
                continue;
            }
            let term = Terminal {
                warehouses: self.warehouses,
                w_id: request.w_id,
                d_id: 1,
                scale: self.scale,
                retries: &self.live.retries,
            };
            let result = term.deliver(&mut client, request).await;
            let done = Instant::now();
            if let Some(log) = self.log {
                log.record(start, queued_at, done, request, &result);
            }
            // Counted like the queuing in the Delivery row: if it was
            // queued in the measurement interval.
            let mut ramping = DeferredStats::default();
            let stats = if queued_at >= measure_from {
                &mut stats
            } else {
                &mut ramping
            };
            match result {
                Ok(orders) => {
                    stats.done += 1;
                    stats.skipped += orders.iter().filter(|o| o.is_none()).count() as u64;
                    stats.latencies.push(done - queued_at);
                }
                Err(e) => {
                    stats.errors += 1;
                    let what = "Delivery (deferred)";
                    failed(self.live, &mut sample_errors, what, &e, &mut client).await;
                }
            }
        }
    }
}

/// The result file of the deferred Deliveries (clause 2.7.2.3), one line
/// each: `queued=<s> done=<s> w=<w_id> carrier=<c>` followed by
/// `d<n>=<o_id>` or `d<n>=skipped` for the ten districts, or by
/// `failed: <error>`. Times are seconds since the run started.
pub struct DeliveryLog {
    file: std::sync::Mutex<std::io::BufWriter<std::fs::File>>,
}

impl DeliveryLog {
    /// Creates (truncates) the file at `path`.
    fn create(path: &std::path::Path) -> Result<DeliveryLog> {
        let file = std::fs::File::create(path).map_err(|e| {
            Error::abort(format!(
                "cannot create the delivery log {}: {e}",
                path.display()
            ))
        })?;
        Ok(DeliveryLog {
            file: std::sync::Mutex::new(std::io::BufWriter::new(file)),
        })
    }

    /// Writes one Delivery's line.
    fn record(
        &self,
        start: Instant,
        queued_at: Instant,
        done: Instant,
        request: DeliveryRequest,
        result: &Result<[Option<i32>; 10]>,
    ) {
        use std::fmt::Write as _;
        use std::io::Write as _;
        let secs = |t: Instant| (t - start).as_secs_f64();
        let mut line = format!(
            "queued={:.3} done={:.3} w={} carrier={}",
            secs(queued_at),
            secs(done),
            request.w_id,
            request.carrier
        );
        match result {
            Ok(orders) => {
                for (d, order) in orders.iter().enumerate() {
                    let _ = match order {
                        Some(o_id) => write!(line, " d{}={o_id}", d + 1),
                        None => write!(line, " d{}=skipped", d + 1),
                    };
                }
            }
            Err(e) => {
                let _ = write!(line, " failed: {}", describe(e));
            }
        }
        let mut file = self.file.lock().expect("delivery log poisoned");
        if let Err(e) = writeln!(file, "{line}").and_then(|()| file.flush()) {
            eprintln!("warning: cannot write the delivery log: {e}");
        }
    }
}

/// An error with the server's SQLSTATE and message when there is one.
fn describe(e: &Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Sleeps for `d` unless that passes `deadline`; false if it would.
async fn sleep_until_or(deadline: Instant, d: Duration) -> bool {
    let until = Instant::now() + d;
    if until >= deadline {
        tokio::time::sleep_until(deadline.into()).await;
        return false;
    }
    tokio::time::sleep(d).await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deck_mix() {
        let d = deck();
        assert_eq!(d.len(), 100);
        let count = |k| d.iter().filter(|&&x| x == k).count();
        assert_eq!(count(Kind::NewOrder), 45);
        assert_eq!(count(Kind::Payment), 43);
        assert_eq!(count(Kind::OrderStatus), 4);
        assert_eq!(count(Kind::Delivery), 4);
        assert_eq!(count(Kind::StockLevel), 4);
        // Draws aligned on whole decks give the mix exactly; a deck is
        // shuffled (not always in the same order).
        let mut deck = Deck::new();
        let mut rng = rand::rng();
        let mut counts = [0usize; 5];
        let mut first = Vec::new();
        for i in 0..100 * 50 {
            let k = deck.draw(&mut rng);
            counts[k.index()] += 1;
            if i < 100 {
                first.push(k);
            }
        }
        assert_eq!(counts, [2250, 2150, 200, 200, 200]);
        assert_ne!(first, d);
    }

    #[test]
    fn think_times() {
        assert_eq!(think_time(Kind::NewOrder, 1e-300), Duration::from_secs(120));
        assert_eq!(think_time(Kind::Delivery, 1.0), Duration::ZERO);
        let mut rng = rand::rng();
        let n = 100_000;
        let mean: f64 = (0..n)
            .map(|_| {
                let r: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                think_time(Kind::Payment, r).as_secs_f64()
            })
            .sum::<f64>()
            / n as f64;
        assert!((11.5..12.5).contains(&mean), "{mean}");
    }

    #[test]
    fn percentiles() {
        let k = KindStats {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..Default::default()
        };
        assert_eq!(k.percentile(50.0), Duration::from_millis(50));
        assert_eq!(k.percentile(99.0), Duration::from_millis(99));
        assert_eq!(k.percentile(100.0), Duration::from_millis(100));
    }
}
