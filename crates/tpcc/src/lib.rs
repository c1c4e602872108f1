//! TPC-C (revision 5.11) for any PostgreSQL-wire endpoint: schema,
//! loader, the five transactions, a driver that reports tpmC and
//! response times, and consistency checks.
//!
//! | module | spec clauses | left out |
//! | --- | --- | --- |
//! | [`schema`] | 1.3 (tables, primary keys) | foreign keys (1.4 allows it) |
//! | [`load`] | 4.3.3.1 (population), 4.3.2 (value generation) | random load-time NURand constants (fixed ones) |
//! | [`random`] | 2.1.6 (NURand, C constants and 2.1.6.1 delta rule), 4.3.2.2–4.3.2.7 | |
//! | [`txn`] | 2.4–2.8 (inputs and database profiles) | terminal screens |
//! | [`driver`] | 5.2.4.2 (deck), 5.2.5.4/5.2.5.7 (think/keying times, spec mode), 2.7.2 (deferred Delivery, result file 2.7.2.3), 5.4 (tpmC), 5.5.1 (ramp-up, measurement interval) | response-time limits enforcement |
//! | [`check`] | 3.3.2.1–3.3.2.12 (consistency conditions 1–12; 11 only right after the load) | |
//! | [`placement`] | (Meridian only) warehouses in ranges of their own, dealt round the groups | |
//!
//! All SQL is plain PostgreSQL, so the same code drives PostgreSQL.
//!
//! [`Scale`] shrinks the database for tests: **not a spec configuration**;
//! use [`Scale::SPEC`] for real runs.

pub mod check;
pub mod driver;
pub mod load;
pub mod placement;
pub mod random;
pub mod schema;
pub mod txn;

/// Per-warehouse cardinalities. [`Scale::SPEC`] is clause 4.3.3.1; any
/// other value is for tests only and gives a database that is not TPC-C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Rows in ITEM (and STOCK per warehouse): 100,000 in the spec.
    pub items: u32,
    /// Customers per district: 3,000 in the spec.
    pub customers_per_district: u32,
    /// Orders per district at load: 3,000 in the spec.
    pub orders_per_district: u32,
    /// Undelivered orders (NEW_ORDER rows) per district at load, the last
    /// ones: 900 in the spec (orders 2101..=3000).
    pub new_orders_per_district: u32,
}

impl Scale {
    /// The spec's cardinalities.
    pub const SPEC: Scale = Scale {
        items: 100_000,
        customers_per_district: 3000,
        orders_per_district: 3000,
        new_orders_per_district: 900,
    };

    /// A tiny database for tests (NOT TPC-C): 1,000 items, 30 customers
    /// and 30 orders (9 undelivered) per district.
    pub const TINY: Scale = Scale {
        items: 1000,
        customers_per_district: 30,
        orders_per_district: 30,
        new_orders_per_district: 9,
    };
}
