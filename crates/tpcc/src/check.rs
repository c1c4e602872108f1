//! The consistency conditions of clause 3.3.2, checked with aggregate
//! queries over the simple query protocol (values compared as decimals
//! parsed from text, so any numeric type works). Joins are done here, not
//! in SQL: each query reads one table, grouped by the key the condition
//! compares on, so the work is a scan per table on any server.
//!
//! Condition 11 (orders minus new orders = 2,100 per district) holds only
//! until the first Delivery, so [`check`] leaves it out and
//! [`check_fresh`] adds it for a database as loaded.

use std::collections::HashMap;
use std::str::FromStr;

use meridian_client::{Client, Result, SimpleQueryMessage};
use rust_decimal::Decimal;

use crate::Scale;

/// The outcome of one condition.
#[derive(Clone, Debug)]
pub struct Condition {
    /// Its number in clause 3.3.2.
    pub number: u32,
    /// What it states.
    pub description: &'static str,
    /// The violations found (empty: it holds).
    pub violations: Vec<String>,
}

impl Condition {
    /// Whether it holds.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Rows of a query as text columns (NULL as None).
async fn rows(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    for m in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            out.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
        }
    }
    Ok(out)
}

fn dec(v: &Option<String>) -> Option<Decimal> {
    v.as_deref().and_then(|s| Decimal::from_str(s.trim()).ok())
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// The first `n` columns as a key, the rest as decimals.
async fn keyed<const N: usize>(
    client: &Client,
    sql: &str,
) -> Result<HashMap<[String; N], Vec<Option<Decimal>>>> {
    Ok(rows(client, sql)
        .await?
        .into_iter()
        .map(|r| {
            let key = std::array::from_fn(|i| text(&r[i]));
            (key, r[N..].iter().map(dec).collect())
        })
        .collect())
}

/// A condition with no violations yet.
fn condition(number: u32, description: &'static str) -> Condition {
    Condition {
        number,
        description,
        violations: Vec::new(),
    }
}

/// At most this many violations are listed per condition.
const MAX_VIOLATIONS: usize = 100;

impl Condition {
    fn violated(&mut self, what: impl FnOnce() -> String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(what());
        }
    }
}

/// Checks conditions 1–10 and 12 (those that hold at any time).
pub async fn check(client: &Client) -> Result<Vec<Condition>> {
    let mut out = check_1_to_4(client).await?;
    out.extend(check_5_to_7(client).await?);
    out.extend(check_8_to_10_and_12(client).await?);
    Ok(out)
}

/// [`check`], plus condition 11 for a database just loaded at `scale`
/// (no Delivery has run).
pub async fn check_fresh(client: &Client, scale: Scale) -> Result<Vec<Condition>> {
    let mut out = check(client).await?;
    let mut c = condition(
        11,
        "rows in ORDER - rows in NEW_ORDER = orders - new orders at load, per district",
    );
    let want = Decimal::from(scale.orders_per_district - scale.new_orders_per_district);
    let orders = keyed::<2>(
        client,
        "SELECT o_w_id, o_d_id, count(*) FROM orders GROUP BY o_w_id, o_d_id",
    )
    .await?;
    let news = keyed::<2>(
        client,
        "SELECT no_w_id, no_d_id, count(*) FROM new_order GROUP BY no_w_id, no_d_id",
    )
    .await?;
    let mut keys: Vec<_> = orders.keys().collect();
    keys.sort();
    for k in keys {
        let o = orders[k][0].unwrap_or_default();
        let n = news.get(k).and_then(|v| v[0]).unwrap_or_default();
        if o - n != want {
            c.violated(|| format!("district {k:?}: {o} orders - {n} new orders != {want}"));
        }
    }
    out.push(c);
    out.sort_by_key(|c| c.number);
    Ok(out)
}

/// Conditions 5–7: orders, new orders and order lines agree on which
/// orders are delivered and how many lines each has.
async fn check_5_to_7(client: &Client) -> Result<Vec<Condition>> {
    // (w, d, o) -> [carrier (None: null), o_ol_cnt]
    let orders = keyed::<3>(
        client,
        "SELECT o_w_id, o_d_id, o_id, o_carrier_id, o_ol_cnt FROM orders",
    )
    .await?;
    let news = keyed::<3>(client, "SELECT no_w_id, no_d_id, no_o_id FROM new_order").await?;
    // (w, d, o) -> [lines, lines not delivered]
    let lines = keyed::<3>(
        client,
        "SELECT ol_w_id, ol_d_id, ol_o_id, count(*), \
         sum(CASE WHEN ol_delivery_d IS NULL THEN 1 ELSE 0 END) \
         FROM order_line GROUP BY ol_w_id, ol_d_id, ol_o_id",
    )
    .await?;
    let mut c5 = condition(
        5,
        "O_CARRIER_ID is null exactly for the orders with a NEW_ORDER row",
    );
    let mut c6 = condition(6, "O_OL_CNT = rows in ORDER_LINE per order");
    let mut c7 = condition(
        7,
        "OL_DELIVERY_D is null exactly for the lines of orders with a null O_CARRIER_ID",
    );
    let mut keys: Vec<_> = orders.keys().collect();
    keys.sort();
    for k in keys {
        let undelivered = orders[k][0].is_none();
        if undelivered != news.contains_key(k) {
            c5.violated(|| {
                format!(
                    "order {k:?}: carrier null = {undelivered}, new order row = {}",
                    news.contains_key(k)
                )
            });
        }
        let (n, open) = lines.get(k).map_or((Decimal::ZERO, Decimal::ZERO), |v| {
            (v[0].unwrap_or_default(), v[1].unwrap_or_default())
        });
        if orders[k][1] != Some(n) {
            c6.violated(|| format!("order {k:?}: o_ol_cnt {:?} != {n} lines", orders[k][1]));
        }
        let want_open = if undelivered { n } else { Decimal::ZERO };
        if open != want_open {
            c7.violated(|| {
                format!(
                    "order {k:?}: {open} of {n} lines undelivered, carrier null = {undelivered}"
                )
            });
        }
    }
    for k in news.keys().filter(|k| !orders.contains_key(*k)) {
        c5.violated(|| format!("new order {k:?} has no order"));
    }
    for k in lines.keys().filter(|k| !orders.contains_key(*k)) {
        c6.violated(|| format!("order lines of {k:?} have no order"));
    }
    Ok(vec![c5, c6, c7])
}

/// Conditions 8–10 and 12: the year-to-date totals and customer
/// balances agree with the history and the delivered order lines.
async fn check_8_to_10_and_12(client: &Client) -> Result<Vec<Condition>> {
    let mut c8 = condition(8, "W_YTD = sum(H_AMOUNT) per warehouse");
    let warehouses = keyed::<1>(client, "SELECT w_id, w_ytd FROM warehouse").await?;
    let paid = keyed::<1>(
        client,
        "SELECT h_w_id, sum(h_amount) FROM history GROUP BY h_w_id",
    )
    .await?;
    totals_match(&mut c8, "warehouse", &warehouses, &paid);

    let mut c9 = condition(9, "D_YTD = sum(H_AMOUNT) per district");
    let districts = keyed::<2>(client, "SELECT d_w_id, d_id, d_ytd FROM district").await?;
    let paid = keyed::<2>(
        client,
        "SELECT h_w_id, h_d_id, sum(h_amount) FROM history GROUP BY h_w_id, h_d_id",
    )
    .await?;
    totals_match(&mut c9, "district", &districts, &paid);

    // What each customer was charged: the delivered lines of its orders.
    let owner = keyed::<3>(client, "SELECT o_w_id, o_d_id, o_id, o_c_id FROM orders").await?;
    let delivered = keyed::<3>(
        client,
        "SELECT ol_w_id, ol_d_id, ol_o_id, sum(ol_amount) FROM order_line \
         WHERE ol_delivery_d IS NOT NULL GROUP BY ol_w_id, ol_d_id, ol_o_id",
    )
    .await?;
    let mut charged: HashMap<[String; 3], Decimal> = HashMap::new();
    for ([w, d, o], v) in &delivered {
        let key = [w.clone(), d.clone(), o.clone()];
        let Some(c_id) = owner.get(&key).and_then(|c| c[0]) else {
            continue; // condition 6 reports lines without an order
        };
        *charged
            .entry([w.clone(), d.clone(), c_id.to_string()])
            .or_default() += v[0].unwrap_or_default();
    }
    let paid = keyed::<3>(
        client,
        "SELECT h_c_w_id, h_c_d_id, h_c_id, sum(h_amount) FROM history \
         GROUP BY h_c_w_id, h_c_d_id, h_c_id",
    )
    .await?;
    let customers = keyed::<3>(
        client,
        "SELECT c_w_id, c_d_id, c_id, c_balance, c_ytd_payment FROM customer",
    )
    .await?;
    let mut c10 = condition(
        10,
        "C_BALANCE = sum(delivered OL_AMOUNT) - sum(H_AMOUNT) per customer",
    );
    let mut c12 = condition(
        12,
        "C_BALANCE + C_YTD_PAYMENT = sum(delivered OL_AMOUNT) per customer",
    );
    for (k, v) in sorted(&customers) {
        let charged = charged.get(k).copied().unwrap_or_default();
        let paid = paid.get(k).and_then(|p| p[0]).unwrap_or_default();
        let (balance, ytd) = (v[0].unwrap_or_default(), v[1].unwrap_or_default());
        if balance != charged - paid {
            c10.violated(|| {
                format!("customer {k:?}: c_balance {balance} != {charged} delivered - {paid} paid")
            });
        }
        if balance + ytd != charged {
            c12.violated(|| {
                format!(
                    "customer {k:?}: c_balance {balance} + c_ytd_payment {ytd} != {charged} delivered"
                )
            });
        }
    }
    Ok(vec![c8, c9, c10, c12])
}

/// Reports to `c` each `what` whose year-to-date total (its first value)
/// is not the sum of the history `paid` holds for it.
fn totals_match<const N: usize>(
    c: &mut Condition,
    what: &str,
    totals: &HashMap<[String; N], Vec<Option<Decimal>>>,
    paid: &HashMap<[String; N], Vec<Option<Decimal>>>,
) {
    for (k, v) in sorted(totals) {
        let sum = paid.get(k).and_then(|p| p[0]).unwrap_or_default();
        if v[0] != Some(sum) {
            c.violated(|| format!("{what} {k:?}: ytd {:?} != sum(h_amount) {sum}", v[0]));
        }
    }
}

/// `map`'s entries in key order (reports come out the same every time).
fn sorted<K: Ord, V>(map: &HashMap<K, V>) -> Vec<(&K, &V)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// Conditions 1–4: the district and warehouse counters agree with the
/// orders, new orders and order lines.
async fn check_1_to_4(client: &Client) -> Result<Vec<Condition>> {
    let mut out = Vec::new();

    // 1: W_YTD = sum(D_YTD).
    let mut c = condition(1, "W_YTD = sum(D_YTD) per warehouse");
    let w = keyed::<1>(client, "SELECT w_id, w_ytd FROM warehouse").await?;
    let d = keyed::<1>(
        client,
        "SELECT d_w_id, sum(d_ytd) FROM district GROUP BY d_w_id",
    )
    .await?;
    for (id, v) in sorted(&w) {
        let (a, b) = (v[0], d.get(id).and_then(|v| v[0]));
        if a != b {
            c.violated(|| format!("warehouse {id:?}: w_ytd {a:?} != sum(d_ytd) {b:?}"));
        }
    }
    out.push(c);

    let district = keyed::<2>(client, "SELECT d_w_id, d_id, d_next_o_id FROM district").await?;
    let orders = keyed::<2>(
        client,
        "SELECT o_w_id, o_d_id, max(o_id), sum(o_ol_cnt) FROM orders GROUP BY o_w_id, o_d_id",
    )
    .await?;
    let new_orders = keyed::<2>(
        client,
        "SELECT no_w_id, no_d_id, max(no_o_id), min(no_o_id), count(*) FROM new_order GROUP BY no_w_id, no_d_id",
    )
    .await?;
    let lines = keyed::<2>(
        client,
        "SELECT ol_w_id, ol_d_id, count(*) FROM order_line GROUP BY ol_w_id, ol_d_id",
    )
    .await?;
    let mut keys: Vec<_> = district.keys().cloned().collect();
    keys.sort();

    // 2: D_NEXT_O_ID - 1 = max(O_ID) = max(NO_O_ID).
    let mut c = condition(2, "D_NEXT_O_ID - 1 = max(O_ID) = max(NO_O_ID) per district");
    for k in &keys {
        let next = district[k][0].map(|v| v - Decimal::ONE);
        let max_o = orders.get(k).and_then(|v| v[0]);
        if next != max_o {
            c.violated(|| {
                format!("district {k:?}: d_next_o_id - 1 = {next:?}, max(o_id) = {max_o:?}")
            });
        }
        if let Some(no) = new_orders.get(k) {
            if no[0] != max_o {
                c.violated(|| {
                    format!(
                        "district {k:?}: max(no_o_id) = {:?}, max(o_id) = {max_o:?}",
                        no[0]
                    )
                });
            }
        }
    }
    out.push(c);

    // 3: max(NO_O_ID) - min(NO_O_ID) + 1 = count(NEW_ORDER).
    let mut c = condition(
        3,
        "max(NO_O_ID) - min(NO_O_ID) + 1 = rows in NEW_ORDER per district",
    );
    for (k, v) in sorted(&new_orders) {
        if let (Some(max), Some(min), Some(n)) = (v[0], v[1], v[2]) {
            if max - min + Decimal::ONE != n {
                c.violated(|| format!("district {k:?}: max {max} - min {min} + 1 != count {n}"));
            }
        }
    }
    out.push(c);

    // 4: sum(O_OL_CNT) = rows in ORDER_LINE.
    let mut c = condition(4, "sum(O_OL_CNT) = rows in ORDER_LINE per district");
    for k in &keys {
        let sum = orders.get(k).and_then(|v| v[1]);
        let n = lines.get(k).and_then(|v| v[0]);
        if sum != n {
            c.violated(|| format!("district {k:?}: sum(o_ol_cnt) {sum:?} != order lines {n:?}"));
        }
    }
    out.push(c);
    Ok(out)
}
