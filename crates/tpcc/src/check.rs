//! The consistency conditions 1–4 of clause 3.3.2.1–3.3.2.4, checked
//! with aggregate queries over the simple query protocol (values compared
//! as decimals parsed from text, so any numeric type works).
//!
//! Left out: conditions 5–12 (they need full scans joining orders,
//! order lines, history and customers).

use std::collections::HashMap;
use std::str::FromStr;

use meridian_client::{Client, Result, SimpleQueryMessage};
use rust_decimal::Decimal;

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

/// (w, d) → the decimal values of the remaining columns.
async fn by_district(
    client: &Client,
    sql: &str,
) -> Result<HashMap<(String, String), Vec<Option<Decimal>>>> {
    Ok(rows(client, sql)
        .await?
        .into_iter()
        .map(|r| {
            let key = (
                r[0].clone().unwrap_or_default(),
                r[1].clone().unwrap_or_default(),
            );
            (key, r[2..].iter().map(dec).collect())
        })
        .collect())
}

/// Checks conditions 1–4.
pub async fn check(client: &Client) -> Result<Vec<Condition>> {
    let mut out = Vec::new();

    // 1: W_YTD = sum(D_YTD).
    let mut c = Condition {
        number: 1,
        description: "W_YTD = sum(D_YTD) per warehouse",
        violations: Vec::new(),
    };
    let w = rows(client, "SELECT w_id, w_ytd FROM warehouse").await?;
    let d: HashMap<String, Option<Decimal>> = rows(
        client,
        "SELECT d_w_id, sum(d_ytd) FROM district GROUP BY d_w_id",
    )
    .await?
    .into_iter()
    .map(|r| (r[0].clone().unwrap_or_default(), dec(&r[1])))
    .collect();
    for r in &w {
        let id = r[0].clone().unwrap_or_default();
        let (a, b) = (dec(&r[1]), d.get(&id).copied().flatten());
        if a != b {
            c.violations
                .push(format!("warehouse {id}: w_ytd {a:?} != sum(d_ytd) {b:?}"));
        }
    }
    out.push(c);

    let district = by_district(client, "SELECT d_w_id, d_id, d_next_o_id FROM district").await?;
    let orders = by_district(
        client,
        "SELECT o_w_id, o_d_id, max(o_id), sum(o_ol_cnt) FROM orders GROUP BY o_w_id, o_d_id",
    )
    .await?;
    let new_orders = by_district(
        client,
        "SELECT no_w_id, no_d_id, max(no_o_id), min(no_o_id), count(*) FROM new_order GROUP BY no_w_id, no_d_id",
    )
    .await?;
    let lines = by_district(
        client,
        "SELECT ol_w_id, ol_d_id, count(*) FROM order_line GROUP BY ol_w_id, ol_d_id",
    )
    .await?;
    let mut keys: Vec<_> = district.keys().cloned().collect();
    keys.sort();

    // 2: D_NEXT_O_ID - 1 = max(O_ID) = max(NO_O_ID).
    let mut c = Condition {
        number: 2,
        description: "D_NEXT_O_ID - 1 = max(O_ID) = max(NO_O_ID) per district",
        violations: Vec::new(),
    };
    for k in &keys {
        let next = district[k][0].map(|v| v - Decimal::ONE);
        let max_o = orders.get(k).and_then(|v| v[0]);
        if next != max_o {
            c.violations.push(format!(
                "district {k:?}: d_next_o_id - 1 = {next:?}, max(o_id) = {max_o:?}"
            ));
        }
        if let Some(no) = new_orders.get(k) {
            if no[0] != max_o {
                c.violations.push(format!(
                    "district {k:?}: max(no_o_id) = {:?}, max(o_id) = {max_o:?}",
                    no[0]
                ));
            }
        }
    }
    out.push(c);

    // 3: max(NO_O_ID) - min(NO_O_ID) + 1 = count(NEW_ORDER).
    let mut c = Condition {
        number: 3,
        description: "max(NO_O_ID) - min(NO_O_ID) + 1 = rows in NEW_ORDER per district",
        violations: Vec::new(),
    };
    for (k, v) in &new_orders {
        if let (Some(max), Some(min), Some(n)) = (v[0], v[1], v[2]) {
            if max - min + Decimal::ONE != n {
                c.violations.push(format!(
                    "district {k:?}: max {max} - min {min} + 1 != count {n}"
                ));
            }
        }
    }
    out.push(c);

    // 4: sum(O_OL_CNT) = rows in ORDER_LINE.
    let mut c = Condition {
        number: 4,
        description: "sum(O_OL_CNT) = rows in ORDER_LINE per district",
        violations: Vec::new(),
    };
    for k in &keys {
        let sum = orders.get(k).and_then(|v| v[1]);
        let n = lines.get(k).and_then(|v| v[0]);
        if sum != n {
            c.violations.push(format!(
                "district {k:?}: sum(o_ol_cnt) {sum:?} != order lines {n:?}"
            ));
        }
    }
    out.push(c);
    Ok(out)
}
