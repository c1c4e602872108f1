//! Warehouses across groups (Meridian only): each table keyed by warehouse
//! is cut into one range per warehouse (`ALTER TABLE ... SPLIT AT`), and
//! the warehouses are dealt round the cluster's groups (`ALTER TABLE ...
//! RELOCATE ... TO GROUP`), every table of a warehouse in the same group.
//! A transaction of one warehouse then stays in one group (but for ITEM
//! and HISTORY, which are not keyed by warehouse), and one touching a
//! remote warehouse in another group commits with two-phase commit.
//!
//! The secondary index `customer_by_name` lives in the customer table's
//! keyspace after its primary key, so it stays with the last warehouse's
//! range: SPLIT AT cuts primary keys only.

use meridian_client::{Client, Error, Result};

/// The tables whose primary key starts with the warehouse id.
pub const BY_WAREHOUSE: &[&str] = &[
    "warehouse",
    "district",
    "customer",
    "new_order",
    "orders",
    "order_line",
    "stock",
];

/// The group warehouse `w` (from 1) goes to.
pub fn group_of(groups: &[i64], w: i32) -> i64 {
    groups[(w as usize - 1) % groups.len()]
}

/// Cuts every table of [`BY_WAREHOUSE`] at each warehouse and moves
/// warehouse `w`'s ranges to [`group_of`] the cluster's groups (every
/// group serving a range, in id order). Run it on empty tables: a move
/// copies the range's rows. Returns the groups.
pub async fn partition(client: &Client, warehouses: i32) -> Result<Vec<i64>> {
    let groups = groups(client).await?;
    for table in BY_WAREHOUSE {
        if warehouses > 1 {
            let at: Vec<String> = (2..=warehouses).map(|w| format!("({w})")).collect();
            client
                .batch_execute(&format!(
                    "ALTER TABLE {table} SPLIT AT VALUES {}",
                    at.join(", ")
                ))
                .await?;
        }
        for w in 1..=warehouses {
            client
                .batch_execute(&format!(
                    "ALTER TABLE {table} RELOCATE VALUES ({w}) TO GROUP {}",
                    group_of(&groups, w)
                ))
                .await?;
        }
    }
    Ok(groups)
}

/// The groups serving some range, in id order.
async fn groups(client: &Client) -> Result<Vec<i64>> {
    let mut groups: Vec<i64> = client
        .query("SHOW RANGES", &[])
        .await?
        .iter()
        .map(|row| row.get::<_, i64>("group_id"))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    if groups.is_empty() {
        return Err(Error::abort("SHOW RANGES lists no range"));
    }
    Ok(groups)
}

/// Where each warehouse's rows are, as the WAREHOUSE table's ranges show
/// it: `Some(group of warehouse w at index w - 1)` when the table is cut
/// into exactly one range per warehouse (by [`partition`]), `None` when it
/// is not, or the server has no `SHOW RANGES` (PostgreSQL).
pub async fn warehouse_groups(client: &Client, warehouses: i32) -> Option<Vec<i64>> {
    // The ranges come in key order, so the i-th holds warehouse i + 1.
    let rows = client
        .query("SHOW RANGES FROM TABLE warehouse", &[])
        .await
        .ok()?;
    (rows.len() == warehouses as usize).then(|| {
        rows.iter()
            .map(|row| row.get::<_, i64>("group_id"))
            .collect()
    })
}
