//! The initial database population of clause 4.3.3.1: cardinalities and
//! value distributions per table, loaded in parallel over several
//! connections with multi-row `INSERT`s of [`BATCH`] rows.
//!
//! Left out: the spec's exact `c_since`/`o_entry_d`/`h_date` (all are the
//! load time, `now()`), and the random NURand load constants (they are
//! fixed, see [`Constants::LOAD`]).

use std::fmt::Write as _;
use std::sync::Arc;

use meridian_client::{Client, Result};
use rand::seq::SliceRandom;
use rust_decimal::Decimal;
use tokio::sync::Mutex;

use crate::random::{fixed, last_name, Constants, Gen};
use crate::Scale;
use crate::{placement, schema};

/// Rows per `INSERT` statement.
pub const BATCH: usize = 200;

/// One unit of loading work.
#[derive(Clone, Copy, Debug)]
enum Job {
    /// Items `from..=to`.
    Items(i32, i32),
    /// The warehouse row and its stock rows `from..=to` (warehouse row when `from == 1`).
    Stock(i32, i32, i32),
    /// A district row with its customers and history.
    Customers(i32, i32),
    /// A district's orders, order lines and new orders.
    Orders(i32, i32),
}

/// Drops the TPC-C tables if they exist and creates them.
pub async fn create_schema(client: &Client) -> Result<()> {
    for table in schema::TABLES {
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await?;
    }
    for ddl in schema::CREATE {
        client.batch_execute(ddl).await?;
    }
    Ok(())
}

/// Where the rows go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Wherever the server puts new tables.
    Default,
    /// Each warehouse's rows in ranges of their own, the warehouses dealt
    /// round the groups (Meridian only, see [`placement`]).
    ByWarehouse,
}

/// Creates the schema (laid out as `layout` says) and loads `warehouses`
/// warehouses at `scale` over `connections` connections to `url`.
pub async fn load(
    url: &str,
    warehouses: i32,
    connections: usize,
    scale: Scale,
    layout: Layout,
) -> Result<()> {
    let client = Client::connect(url).await?;
    create_schema(&client).await?;
    if layout == Layout::ByWarehouse {
        placement::partition(&client, warehouses).await?;
    }
    drop(client);
    let mut jobs = Vec::new();
    let items = scale.items as i32;
    let chunk = 5000;
    let mut from = 1;
    while from <= items {
        jobs.push(Job::Items(from, (from + chunk - 1).min(items)));
        from += chunk;
    }
    for w in 1..=warehouses {
        let mut from = 1;
        while from <= items {
            jobs.push(Job::Stock(w, from, (from + chunk - 1).min(items)));
            from += chunk;
        }
        for d in 1..=10 {
            jobs.push(Job::Customers(w, d));
            jobs.push(Job::Orders(w, d));
        }
    }
    jobs.reverse();
    let jobs = Arc::new(Mutex::new(jobs));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let jobs = jobs.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let client = Client::connect(&url).await?;
            let mut gen = Gen::new(Constants::LOAD);
            loop {
                let job = jobs.lock().await.pop();
                let Some(job) = job else { return Ok(()) };
                if let Err(err) = run_job(&client, &mut gen, job, scale).await {
                    // Stop the other loaders: the load has failed.
                    jobs.lock().await.clear();
                    return Err(err);
                }
            }
        }));
    }
    let mut result = Ok(());
    for task in tasks {
        let r: Result<()> = task.await.expect("loader task panicked");
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// Accumulates rows of one table and flushes them as multi-row INSERTs.
struct Inserter<'a> {
    client: &'a Client,
    head: &'static str,
    rows: Vec<String>,
}

impl<'a> Inserter<'a> {
    fn new(client: &'a Client, head: &'static str) -> Self {
        Inserter {
            client,
            head,
            rows: Vec::with_capacity(BATCH),
        }
    }

    async fn push(&mut self, row: String) -> Result<()> {
        self.rows.push(row);
        if self.rows.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut sql =
            String::with_capacity(self.rows.iter().map(|r| r.len() + 4).sum::<usize>() + 100);
        sql.push_str("INSERT INTO ");
        sql.push_str(self.head);
        sql.push_str(" VALUES ");
        for (i, row) in self.rows.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(row);
            sql.push(')');
        }
        self.rows.clear();
        self.client.batch_execute(&sql).await
    }
}

/// A street/city/state/zip address as SQL literals.
fn address(gen: &mut Gen) -> String {
    let (s1, s2, city) = (
        gen.astring(10, 20),
        gen.astring(10, 20),
        gen.astring(10, 20),
    );
    let state: String = gen.astring(2, 2).to_uppercase();
    format!("'{s1}', '{s2}', '{city}', '{state}', '{}'", gen.zip())
}

/// A district's D_YTD at load: the 10.00 of each of its customers' HISTORY
/// rows (30,000.00 at the spec's scale, where W_YTD is 300,000.00), so
/// that conditions 8 and 9 hold at every scale.
fn district_ytd(scale: Scale) -> Decimal {
    Decimal::new(1000, 2) * Decimal::from(scale.customers_per_district)
}

async fn run_job(client: &Client, gen: &mut Gen, job: Job, scale: Scale) -> Result<()> {
    match job {
        Job::Items(from, to) => {
            let mut ins = Inserter::new(client, "item (i_id, i_im_id, i_name, i_price, i_data)");
            for i in from..=to {
                let row = format!(
                    "{i}, {}, '{}', {}, '{}'",
                    gen.uniform(1, 10_000),
                    gen.astring(14, 24),
                    fixed(gen, 100, 10_000, 2),
                    gen.data_original()
                );
                ins.push(row).await?;
            }
            ins.flush().await
        }
        Job::Stock(w, from, to) => {
            if from == 1 {
                let row = format!(
                    "{w}, '{}', {}, {}, {}",
                    gen.astring(6, 10),
                    address(gen),
                    fixed(gen, 0, 2000, 4),
                    district_ytd(scale) * Decimal::from(10)
                );
                let mut ins = Inserter::new(
                    client,
                    "warehouse (w_id, w_name, w_street_1, w_street_2, w_city, w_state, w_zip, w_tax, w_ytd)",
                );
                ins.push(row).await?;
                ins.flush().await?;
            }
            let mut ins = Inserter::new(
                client,
                "stock (s_i_id, s_w_id, s_quantity, s_dist_01, s_dist_02, s_dist_03, s_dist_04, \
                 s_dist_05, s_dist_06, s_dist_07, s_dist_08, s_dist_09, s_dist_10, s_ytd, \
                 s_order_cnt, s_remote_cnt, s_data)",
            );
            for i in from..=to {
                let mut row = format!("{i}, {w}, {}", gen.uniform(10, 100));
                for _ in 0..10 {
                    let _ = write!(row, ", '{}'", gen.astring(24, 24));
                }
                let _ = write!(row, ", 0, 0, 0, '{}'", gen.data_original());
                ins.push(row).await?;
            }
            ins.flush().await
        }
        Job::Customers(w, d) => load_customers(client, gen, w, d, scale).await,
        Job::Orders(w, d) => load_orders(client, gen, w, d, scale).await,
    }
}

async fn load_customers(
    client: &Client,
    gen: &mut Gen,
    w: i32,
    d: i32,
    scale: Scale,
) -> Result<()> {
    let customers = scale.customers_per_district as i32;
    let orders = scale.orders_per_district as i32;
    let row = format!(
        "{d}, {w}, '{}', {}, {}, {}, {}",
        gen.astring(6, 10),
        address(gen),
        fixed(gen, 0, 2000, 4),
        district_ytd(scale),
        orders + 1
    );
    let mut ins = Inserter::new(
        client,
        "district (d_id, d_w_id, d_name, d_street_1, d_street_2, d_city, d_state, d_zip, d_tax, d_ytd, d_next_o_id)",
    );
    ins.push(row).await?;
    ins.flush().await?;

    let mut cust = Inserter::new(
        client,
        "customer (c_id, c_d_id, c_w_id, c_first, c_middle, c_last, c_street_1, c_street_2, \
         c_city, c_state, c_zip, c_phone, c_since, c_credit, c_credit_lim, c_discount, \
         c_balance, c_ytd_payment, c_payment_cnt, c_delivery_cnt, c_data)",
    );
    let mut hist = Inserter::new(
        client,
        "history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, h_amount, h_data)",
    );
    for c in 1..=customers {
        // Clause 4.3.2.3: the first 1000 customers get each name once.
        let n = if c <= 1000 {
            (c - 1) as i64
        } else {
            gen.nurand(255, 0, 999)
        };
        let credit = if gen.uniform(1, 10) == 1 { "BC" } else { "GC" };
        let row = format!(
            "{c}, {d}, {w}, '{}', 'OE', '{}', {}, '{}', now(), '{credit}', 50000.00, {}, \
             -10.00, 10.00, 1, 0, '{}'",
            gen.astring(8, 16),
            last_name(n),
            address(gen),
            gen.nstring(16, 16),
            fixed(gen, 0, 5000, 4),
            gen.astring(300, 500)
        );
        cust.push(row).await?;
        let row = format!(
            "{c}, {d}, {w}, {d}, {w}, now(), 10.00, '{}'",
            gen.astring(12, 24)
        );
        hist.push(row).await?;
    }
    cust.flush().await?;
    hist.flush().await
}

async fn load_orders(client: &Client, gen: &mut Gen, w: i32, d: i32, scale: Scale) -> Result<()> {
    let customers = scale.customers_per_district as i32;
    let orders = scale.orders_per_district as i32;
    let first_new = orders - scale.new_orders_per_district as i32 + 1;

    let mut perm: Vec<i32> = (1..=customers).collect();
    perm.shuffle(gen.rng());
    let mut ord = Inserter::new(
        client,
        "orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, o_ol_cnt, o_all_local)",
    );
    let mut lines = Inserter::new(
        client,
        "order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, ol_supply_w_id, \
         ol_delivery_d, ol_quantity, ol_amount, ol_dist_info)",
    );
    let mut news = Inserter::new(client, "new_order (no_o_id, no_d_id, no_w_id)");
    for o in 1..=orders {
        let delivered = o < first_new;
        let ol_cnt = gen.uniform(5, 15);
        let carrier = if delivered {
            gen.uniform(1, 10).to_string()
        } else {
            "NULL".to_string()
        };
        let c = perm[((o - 1) % customers) as usize];
        ord.push(format!("{o}, {d}, {w}, {c}, now(), {carrier}, {ol_cnt}, 1"))
            .await?;
        for n in 1..=ol_cnt {
            let (delivery, amount) = if delivered {
                ("now()".to_string(), "0.00".to_string())
            } else {
                ("NULL".to_string(), fixed(gen, 1, 999_999, 2).to_string())
            };
            lines
                .push(format!(
                    "{o}, {d}, {w}, {n}, {}, {w}, {delivery}, 5, {amount}, '{}'",
                    gen.uniform(1, scale.items as i64),
                    gen.astring(24, 24)
                ))
                .await?;
        }
        if !delivered {
            news.push(format!("{o}, {d}, {w}")).await?;
        }
    }
    ord.flush().await?;
    lines.flush().await?;
    news.flush().await
}
