//! The five transactions of clauses 2.4–2.8: input generation (clauses
//! 2.4.1, 2.5.1, 2.6.1, 2.7.1, 2.8.1) and the database profile (clauses
//! 2.4.2, 2.5.2, 2.6.2, 2.7.4, 2.8.2), each run in one database
//! transaction through [`Client::transaction`], which retries
//! serialization failures.
//!
//! Delivery has two halves (clause 2.7): the terminal's input
//! ([`Terminal::delivery_request`]), which the driver queues, and the
//! deferred execution ([`Terminal::deliver`]), which its delivery agents
//! run from the queue; [`Terminal::run`] does both inline.
//!
//! Left out: the terminal output (screens) of clause 2.x.3, and the
//! result file of deferred Deliveries (clause 2.7.2.3: the driver reports
//! their counts and times instead).

use std::sync::atomic::{AtomicU32, Ordering};

use meridian_client::{BoxFuture, Client, Error, Result, Row, Transaction};
use rust_decimal::Decimal;

use crate::random::{last_name, Gen};
use crate::Scale;

/// The five transaction types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// New-Order (clause 2.4).
    NewOrder,
    /// Payment (clause 2.5).
    Payment,
    /// Order-Status (clause 2.6).
    OrderStatus,
    /// Delivery (clause 2.7).
    Delivery,
    /// Stock-Level (clause 2.8).
    StockLevel,
}

impl Kind {
    /// All kinds, in report order.
    pub const ALL: [Kind; 5] = [
        Kind::NewOrder,
        Kind::Payment,
        Kind::OrderStatus,
        Kind::Delivery,
        Kind::StockLevel,
    ];

    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::NewOrder => "New-Order",
            Kind::Payment => "Payment",
            Kind::OrderStatus => "Order-Status",
            Kind::Delivery => "Delivery",
            Kind::StockLevel => "Stock-Level",
        }
    }

    /// Index in [`Kind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What running one transaction came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed.
    Committed,
    /// A New-Order rolled back on purpose (unused item id, clause 2.4.2.3).
    RolledBack,
}

/// A Delivery as the terminal enters it (clause 2.7.1.2), to be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryRequest {
    /// The terminal's warehouse.
    pub w_id: i32,
    /// The carrier, uniform in 1..=10.
    pub carrier: i32,
}

/// A completed transaction: how it ended, and the warehouses other than
/// the terminal's own whose rows it touched (New-Order's remote supply
/// warehouses, Payment's remote customer's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ran {
    /// How it ended.
    pub outcome: Outcome,
    /// The other warehouses it touched, each once.
    pub remote: Vec<i32>,
}

impl Ran {
    /// Committed, touching the home warehouse only.
    pub fn home() -> Ran {
        Ran {
            outcome: Outcome::Committed,
            remote: Vec::new(),
        }
    }
}

/// The terminal context a transaction runs in.
pub struct Terminal<'a> {
    /// The number of warehouses.
    pub warehouses: i32,
    /// The home warehouse.
    pub w_id: i32,
    /// The home district (Stock-Level's district).
    pub d_id: i32,
    /// The database's scale.
    pub scale: Scale,
    /// Counts attempts beyond the first (retries).
    pub retries: &'a AtomicU32,
}

/// Marks the intentional New-Order rollback.
const ROLLBACK: &str = "tpcc: item number is not valid";

impl Terminal<'_> {
    fn customers(&self) -> i64 {
        self.scale.customers_per_district as i64
    }

    /// Runs one transaction of `kind` with fresh inputs from `gen`.
    pub async fn run(&self, client: &mut Client, gen: &mut Gen, kind: Kind) -> Result<Ran> {
        match kind {
            Kind::NewOrder => self.new_order(client, gen).await,
            Kind::Payment => self.payment(client, gen).await,
            Kind::OrderStatus => self.order_status(client, gen).await.map(|_| Ran::home()),
            Kind::Delivery => {
                let request = self.delivery_request(gen);
                self.deliver(client, request).await.map(|_| Ran::home())
            }
            Kind::StockLevel => self.stock_level(client, gen).await.map(|_| Ran::home()),
        }
    }

    /// A customer selector: 60% by last name, else by id (clauses 2.5.1.2, 2.6.1.2).
    fn customer(&self, gen: &mut Gen) -> Customer {
        if gen.uniform(1, 100) <= 60 {
            let max = (self.customers() - 1).min(999);
            Customer::ByName(last_name(gen.last_name_number(max)))
        } else {
            Customer::ById(gen.nurand(1023, 1, self.customers()) as i32)
        }
    }

    /// Clause 2.4.
    async fn new_order(&self, client: &mut Client, gen: &mut Gen) -> Result<Ran> {
        let w_id = self.w_id;
        let d_id = gen.uniform(1, 10) as i32;
        let c_id = gen.nurand(1023, 1, self.customers()) as i32;
        let ol_cnt = gen.uniform(5, 15) as usize;
        let rollback = gen.uniform(1, 100) == 1;
        let items = self.scale.items as i64;
        let mut lines = Vec::with_capacity(ol_cnt);
        for n in 0..ol_cnt {
            let i_id = if rollback && n == ol_cnt - 1 {
                items as i32 + 1
            } else {
                gen.nurand(8191, 1, items) as i32
            };
            let supply = if self.warehouses > 1 && gen.uniform(1, 100) == 1 {
                let mut other = gen.uniform(1, self.warehouses as i64 - 1) as i32;
                if other >= w_id {
                    other += 1;
                }
                other
            } else {
                w_id
            };
            lines.push((i_id, supply, gen.uniform(1, 10) as i32));
        }
        let mut remote: Vec<i32> = lines.iter().map(|l| l.1).filter(|&s| s != w_id).collect();
        remote.sort_unstable();
        remote.dedup();
        let all_local = remote.is_empty() as i32;
        let result = self
            .transaction(client, |tx| {
                // The closure's future may not borrow from it: give each
                // attempt its own copy of the inputs.
                let lines = lines.clone();
                Box::pin(async move {
                    let row = tx
                        .query_one(
                            "SELECT c_discount, c_last, c_credit, w_tax FROM customer, warehouse \
                             WHERE w_id = $1 AND c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
                            &[&w_id, &d_id, &c_id],
                        )
                        .await?;
                    let c_discount: Decimal = row.get(0);
                    let w_tax: Decimal = row.get(3);
                    let row = tx
                        .query_one(
                            "SELECT d_tax, d_next_o_id FROM district WHERE d_w_id = $1 AND d_id = $2 FOR UPDATE",
                            &[&w_id, &d_id],
                        )
                        .await?;
                    let d_tax: Decimal = row.get(0);
                    let o_id: i32 = row.get(1);
                    tx.execute(
                        "UPDATE district SET d_next_o_id = $3 WHERE d_w_id = $1 AND d_id = $2",
                        &[&w_id, &d_id, &(o_id + 1)],
                    )
                    .await?;
                    tx.execute(
                        "INSERT INTO orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, \
                         o_ol_cnt, o_all_local) VALUES ($1, $2, $3, $4, now(), NULL, $5, $6)",
                        &[&o_id, &d_id, &w_id, &c_id, &(lines.len() as i32), &all_local],
                    )
                    .await?;
                    tx.execute(
                        "INSERT INTO new_order (no_o_id, no_d_id, no_w_id) VALUES ($1, $2, $3)",
                        &[&o_id, &d_id, &w_id],
                    )
                    .await?;
                    let mut total = Decimal::ZERO;
                    for (n, &(i_id, supply, qty)) in lines.iter().enumerate() {
                        let Some(item) = tx
                            .query_opt("SELECT i_price, i_name, i_data FROM item WHERE i_id = $1", &[&i_id])
                            .await?
                        else {
                            return Err(Error::abort(ROLLBACK));
                        };
                        let price: Decimal = item.get(0);
                        let dist = format!("s_dist_{d_id:02}");
                        let stock = tx
                            .query_one(
                                &*format!(
                                    "SELECT s_quantity, s_data, {dist} FROM stock \
                                     WHERE s_i_id = $1 AND s_w_id = $2 FOR UPDATE"
                                ),
                                &[&i_id, &supply],
                            )
                            .await?;
                        let s_quantity: i32 = stock.get(0);
                        let dist_info: String = stock.get(2);
                        let new_qty = if s_quantity >= qty + 10 {
                            s_quantity - qty
                        } else {
                            s_quantity - qty + 91
                        };
                        let remote = (supply != w_id) as i32;
                        tx.execute(
                            "UPDATE stock SET s_quantity = $3, s_ytd = s_ytd + $4, \
                             s_order_cnt = s_order_cnt + 1, s_remote_cnt = s_remote_cnt + $5 \
                             WHERE s_i_id = $1 AND s_w_id = $2",
                            &[&i_id, &supply, &new_qty, &qty, &remote],
                        )
                        .await?;
                        let amount = Decimal::from(qty) * price;
                        total += amount;
                        tx.execute(
                            "INSERT INTO order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, \
                             ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info) \
                             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9)",
                            &[&o_id, &d_id, &w_id, &(n as i32 + 1), &i_id, &supply, &qty, &amount, &dist_info],
                        )
                        .await?;
                    }
                    // The total is what the terminal would display.
                    let _total = total * (Decimal::ONE - c_discount) * (Decimal::ONE + w_tax + d_tax);
                    Ok(())
                })
            })
            .await;
        let outcome = match result {
            Ok(()) => Outcome::Committed,
            Err(Error::Aborted(e)) if e.to_string() == ROLLBACK => Outcome::RolledBack,
            Err(e) => return Err(e),
        };
        Ok(Ran { outcome, remote })
    }

    /// [`Client::transaction`], counting the retries it took.
    async fn transaction<T, F>(&self, client: &mut Client, mut f: F) -> Result<T>
    where
        F: for<'t> FnMut(&'t Transaction<'_>) -> BoxFuture<'t, Result<T>>,
    {
        let mut attempts = 0;
        let result = client
            .transaction(|tx| {
                attempts += 1;
                f(tx)
            })
            .await;
        if attempts > 1 {
            self.retries.fetch_add(attempts - 1, Ordering::Relaxed);
        }
        result
    }

    /// Clause 2.5.
    async fn payment(&self, client: &mut Client, gen: &mut Gen) -> Result<Ran> {
        let w_id = self.w_id;
        let d_id = gen.uniform(1, 10) as i32;
        let (c_w_id, c_d_id) = if self.warehouses > 1 && gen.uniform(1, 100) <= 15 {
            let mut other = gen.uniform(1, self.warehouses as i64 - 1) as i32;
            if other >= w_id {
                other += 1;
            }
            (other, gen.uniform(1, 10) as i32)
        } else {
            (w_id, d_id)
        };
        let customer = self.customer(gen);
        let amount = Decimal::new(gen.uniform(100, 500_000), 2);
        let result = self
            .transaction(client, |tx| {
                let customer = customer.clone();
                Box::pin(async move {
                    tx.execute(
                        "UPDATE warehouse SET w_ytd = w_ytd + $2 WHERE w_id = $1",
                        &[&w_id, &amount],
                    )
                    .await?;
                    let w = tx
                        .query_one("SELECT w_name FROM warehouse WHERE w_id = $1", &[&w_id])
                        .await?;
                    let w_name: String = w.get(0);
                    tx.execute(
                        "UPDATE district SET d_ytd = d_ytd + $3 WHERE d_w_id = $1 AND d_id = $2",
                        &[&w_id, &d_id, &amount],
                    )
                    .await?;
                    let d = tx
                        .query_one(
                            "SELECT d_name FROM district WHERE d_w_id = $1 AND d_id = $2",
                            &[&w_id, &d_id],
                        )
                        .await?;
                    let d_name: String = d.get(0);
                    let c_id = customer_id(tx, &customer, c_w_id, c_d_id).await?;
                    let c = tx
                        .query_one(
                            "SELECT c_credit, c_data FROM customer \
                             WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
                            &[&c_w_id, &c_d_id, &c_id],
                        )
                        .await?;
                    let credit: String = c.get(0);
                    if credit == "BC" {
                        let data: String = c.get(1);
                        let mut new_data =
                            format!("{c_id} {c_d_id} {c_w_id} {d_id} {w_id} {amount} {data}");
                        new_data.truncate(500);
                        tx.execute(
                            "UPDATE customer SET c_balance = c_balance - $4, \
                             c_ytd_payment = c_ytd_payment + $4, c_payment_cnt = c_payment_cnt + 1, \
                             c_data = $5 WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
                            &[&c_w_id, &c_d_id, &c_id, &amount, &new_data],
                        )
                        .await?;
                    } else {
                        tx.execute(
                            "UPDATE customer SET c_balance = c_balance - $4, \
                             c_ytd_payment = c_ytd_payment + $4, c_payment_cnt = c_payment_cnt + 1 \
                             WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
                            &[&c_w_id, &c_d_id, &c_id, &amount],
                        )
                        .await?;
                    }
                    let h_data = format!("{w_name}    {d_name}");
                    tx.execute(
                        "INSERT INTO history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, \
                         h_amount, h_data) VALUES ($1, $2, $3, $4, $5, now(), $6, $7)",
                        &[&c_id, &c_d_id, &c_w_id, &d_id, &w_id, &amount, &h_data],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await;
        result?;
        Ok(Ran {
            outcome: Outcome::Committed,
            remote: if c_w_id == w_id {
                Vec::new()
            } else {
                vec![c_w_id]
            },
        })
    }

    /// Clause 2.6.
    async fn order_status(&self, client: &mut Client, gen: &mut Gen) -> Result<()> {
        let w_id = self.w_id;
        let d_id = gen.uniform(1, 10) as i32;
        let customer = self.customer(gen);
        let result = self
            .transaction(client, |tx| {
                let customer = customer.clone();
                Box::pin(async move {
                    let c_id = customer_id(tx, &customer, w_id, d_id).await?;
                    tx.query_one(
                        "SELECT c_balance, c_first, c_middle, c_last FROM customer \
                         WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
                        &[&w_id, &d_id, &c_id],
                    )
                    .await?;
                    let order = tx
                        .query_opt(
                            "SELECT o_id, o_entry_d, o_carrier_id FROM orders \
                             WHERE o_w_id = $1 AND o_d_id = $2 AND o_c_id = $3 \
                             ORDER BY o_id DESC LIMIT 1",
                            &[&w_id, &d_id, &c_id],
                        )
                        .await?;
                    if let Some(order) = order {
                        let o_id: i32 = order.get(0);
                        tx.query(
                            "SELECT ol_i_id, ol_supply_w_id, ol_quantity, ol_amount, ol_delivery_d \
                             FROM order_line WHERE ol_w_id = $1 AND ol_d_id = $2 AND ol_o_id = $3",
                            &[&w_id, &d_id, &o_id],
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await;
        result
    }

    /// Clause 2.7.1: a Delivery's input, for the terminal's warehouse.
    pub fn delivery_request(&self, gen: &mut Gen) -> DeliveryRequest {
        DeliveryRequest {
            w_id: self.w_id,
            carrier: gen.uniform(1, 10) as i32,
        }
    }

    /// Clause 2.7.4: delivers the oldest undelivered order of each of the
    /// warehouse's districts in one transaction; returns the order delivered
    /// in each district (index `d_id - 1`), `None` where there was none (the
    /// district is skipped, clause 2.7.4.2).
    pub async fn deliver(
        &self,
        client: &mut Client,
        request: DeliveryRequest,
    ) -> Result<[Option<i32>; 10]> {
        let DeliveryRequest { w_id, carrier } = request;
        self.transaction(client, |tx| {
            Box::pin(async move {
                let mut delivered = [None; 10];
                for d_id in 1..=10i32 {
                        let Some(no) = tx
                            .query_opt(
                                "SELECT no_o_id FROM new_order WHERE no_w_id = $1 AND no_d_id = $2 \
                                 ORDER BY no_o_id LIMIT 1 FOR UPDATE",
                                &[&w_id, &d_id],
                            )
                            .await?
                        else {
                            continue;
                        };
                        let o_id: i32 = no.get(0);
                        delivered[d_id as usize - 1] = Some(o_id);
                        tx.execute(
                            "DELETE FROM new_order WHERE no_w_id = $1 AND no_d_id = $2 AND no_o_id = $3",
                            &[&w_id, &d_id, &o_id],
                        )
                        .await?;
                        let o = tx
                            .query_one(
                                "SELECT o_c_id FROM orders WHERE o_w_id = $1 AND o_d_id = $2 AND o_id = $3",
                                &[&w_id, &d_id, &o_id],
                            )
                            .await?;
                        let c_id: i32 = o.get(0);
                        tx.execute(
                            "UPDATE orders SET o_carrier_id = $4 WHERE o_w_id = $1 AND o_d_id = $2 AND o_id = $3",
                            &[&w_id, &d_id, &o_id, &carrier],
                        )
                        .await?;
                        tx.execute(
                            "UPDATE order_line SET ol_delivery_d = now() \
                             WHERE ol_w_id = $1 AND ol_d_id = $2 AND ol_o_id = $3",
                            &[&w_id, &d_id, &o_id],
                        )
                        .await?;
                        let lines = tx
                            .query(
                                "SELECT ol_amount FROM order_line \
                                 WHERE ol_w_id = $1 AND ol_d_id = $2 AND ol_o_id = $3",
                                &[&w_id, &d_id, &o_id],
                            )
                            .await?;
                        let total: Decimal = lines.iter().map(|r: &Row| r.get::<_, Decimal>(0)).sum();
                        tx.execute(
                            "UPDATE customer SET c_balance = c_balance + $4, \
                             c_delivery_cnt = c_delivery_cnt + 1 \
                             WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
                            &[&w_id, &d_id, &c_id, &total],
                        )
                        .await?;
                    }
                    Ok(delivered)
                })
            })
            .await
    }

    /// Clause 2.8.
    async fn stock_level(&self, client: &mut Client, gen: &mut Gen) -> Result<()> {
        let (w_id, d_id) = (self.w_id, self.d_id);
        let threshold = gen.uniform(10, 20) as i32;
        let result = self
            .transaction(client, |tx| {
                Box::pin(async move {
                    let d = tx
                        .query_one(
                            "SELECT d_next_o_id FROM district WHERE d_w_id = $1 AND d_id = $2",
                            &[&w_id, &d_id],
                        )
                        .await?;
                    let next: i32 = d.get(0);
                    let low = next - 20;
                    tx.query_one(
                        "SELECT count(DISTINCT s_i_id) FROM order_line, stock \
                         WHERE ol_w_id = $1 AND ol_d_id = $2 AND ol_o_id < $3 AND ol_o_id >= $4 \
                         AND s_w_id = $1 AND s_i_id = ol_i_id AND s_quantity < $5",
                        &[&w_id, &d_id, &next, &low, &threshold],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await;
        result
    }
}

/// How a transaction picks its customer.
#[derive(Clone, Debug)]
enum Customer {
    ById(i32),
    ByName(String),
}

/// The customer's id; by last name, the row at position `ceil(n / 2)` of
/// those with the name sorted by `c_first` (clauses 2.5.2.2, 2.6.2.2).
async fn customer_id(
    tx: &meridian_client::Transaction<'_>,
    customer: &Customer,
    w_id: i32,
    d_id: i32,
) -> Result<i32> {
    match customer {
        Customer::ById(id) => Ok(*id),
        Customer::ByName(name) => {
            let rows = tx
                .query(
                    "SELECT c_id FROM customer WHERE c_w_id = $1 AND c_d_id = $2 AND c_last = $3 \
                     ORDER BY c_first",
                    &[&w_id, &d_id, name],
                )
                .await?;
            if rows.is_empty() {
                return Err(Error::abort(format!("no customer named {name}")));
            }
            let n = rows.len();
            Ok(rows[n.div_ceil(2) - 1].get(0))
        }
    }
}
