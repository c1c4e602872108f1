//! One test per client query shape, on the exact text each client sends
//! (psql 15's from `psql -E` against PostgreSQL 15, the drivers' from their
//! source or a statement log), over a fixed catalog.

use meridian_sql::{ColumnInfo, DataType, IndexInfo, TableInfo, Value};

use super::*;
use crate::values::{CHAR, NAME, OID, TEXT};

fn info() -> CatalogInfo {
    CatalogInfo {
        owner: "meridian".into(),
        database: "meridian".into(),
    }
}

fn column(name: &str, data_type: DataType, nullable: bool, default: Option<&str>) -> ColumnInfo {
    ColumnInfo {
        name: name.into(),
        data_type,
        nullable,
        default: default.map(str::to_owned),
    }
}

/// `users` as in the PostgreSQL session the queries were captured from, and
/// an `orders` table without secondary indexes.
fn tables() -> Vec<TableInfo> {
    vec![
        TableInfo {
            name: "users".into(),
            columns: vec![
                column("id", DataType::Int4, false, None),
                column("name", DataType::Varchar(Some(20)), false, None),
                column("email", DataType::Text, true, None),
                column(
                    "score",
                    DataType::Numeric {
                        precision: Some(10),
                        scale: Some(2),
                    },
                    true,
                    Some("0"),
                ),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![
                IndexInfo {
                    name: "users_name".into(),
                    columns: vec!["name".into()],
                    unique: false,
                    primary: false,
                },
                IndexInfo {
                    name: "users_email_key".into(),
                    columns: vec!["email".into()],
                    unique: true,
                    primary: false,
                },
            ],
        },
        TableInfo {
            name: "orders".into(),
            columns: vec![column("o_id", DataType::Int8, false, None)],
            primary_key: vec!["o_id".into()],
            indexes: vec![],
        },
    ]
}

/// The captured query with PostgreSQL's OID of `users` swapped for ours.
fn query(sql: &str) -> CatalogQuery {
    let sql = sql.replace("16384", &relation_oid("users").to_string());
    CatalogQuery::recognize(&sql).unwrap_or_else(|| panic!("not recognised:\n{sql}"))
}

fn run(sql: &str, params: &[Value]) -> (Vec<String>, Vec<u32>, Vec<Vec<Value>>) {
    let q = query(sql);
    let columns = q.columns();
    let rows = q.run_on(&tables(), params, &info());
    for row in &rows {
        assert_eq!(row.len(), columns.len());
    }
    (
        columns.iter().map(|c| c.name.clone()).collect(),
        columns.iter().map(|c| c.ty.oid).collect(),
        rows,
    )
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn psql_list_tables() {
    for sql in [
        include_str!("testdata/psql_dt.sql"),
        include_str!("testdata/psql_d.sql"),
    ] {
        let (names, _, rows) = run(sql, &[]);
        assert_eq!(names, ["Schema", "Name", "Type", "Owner"]);
        assert_eq!(
            rows,
            vec![
                vec![t("public"), t("orders"), t("table"), t("meridian")],
                vec![t("public"), t("users"), t("table"), t("meridian")],
            ]
        );
    }
    let (_, _, rows) = run(include_str!("testdata/psql_dt_pattern.sql"), &[]);
    assert_eq!(
        rows,
        vec![vec![t("public"), t("users"), t("table"), t("meridian")]]
    );
}

#[test]
fn psql_list_indexes() {
    let (names, _, rows) = run(include_str!("testdata/psql_di.sql"), &[]);
    assert_eq!(names, ["Schema", "Name", "Type", "Owner", "Table"]);
    let listed: Vec<(Value, Value)> = rows.iter().map(|r| (r[1].clone(), r[4].clone())).collect();
    assert_eq!(
        listed,
        vec![
            (t("orders_pkey"), t("orders")),
            (t("users_email_key"), t("users")),
            (t("users_name"), t("users")),
            (t("users_pkey"), t("users")),
        ]
    );
}

#[test]
fn psql_describe_table() {
    let oid = relation_oid("users") as i64;
    // Step 1: find the relation.
    for sql in [
        include_str!("testdata/psql_d_find.sql"),
        include_str!("testdata/psql_d_find_schema.sql"),
    ] {
        let (names, oids, rows) = run(sql, &[]);
        assert_eq!(names, ["oid", "nspname", "relname"]);
        assert_eq!(oids, [OID, NAME, NAME]);
        assert_eq!(rows, vec![vec![Value::Int(oid), t("public"), t("users")]]);
    }
    let missing = include_str!("testdata/psql_d_find.sql").replace("^(users)$", "^(nosuch)$");
    assert!(run(&missing, &[]).2.is_empty());

    // Step 2: the table's flags.
    let (_, oids, rows) = run(include_str!("testdata/psql_d_flags.sql"), &[]);
    assert_eq!(oids.len(), 15);
    assert_eq!(oids[1], CHAR);
    assert_eq!(
        rows,
        vec![vec![
            Value::Int(0),
            t("r"),
            Value::Bool(true),
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(false),
            t(""),
            Value::Int(0),
            t(""),
            t("p"),
            t("d"),
            t("heap"),
        ]]
    );
    let (_, _, rows) = run(include_str!("testdata/psql_dplus_flags.sql"), &[]);
    assert_eq!(rows[0].len(), 15);
    assert_eq!(rows[0][9], t(""));

    // Step 3: the columns.
    let (_, oids, rows) = run(include_str!("testdata/psql_d_columns.sql"), &[]);
    assert_eq!(oids, [NAME, TEXT, TEXT, 16, NAME, CHAR, CHAR]);
    let shown: Vec<Vec<Value>> = rows.iter().map(|r| r[..4].to_vec()).collect();
    let expected: Vec<Vec<Value>> = tables()[0]
        .columns
        .iter()
        .map(|c| {
            vec![
                t(&c.name),
                // format_type() is DataType::pg_name(), as the SQL layer prints it.
                Value::Text(c.data_type.pg_name()),
                c.default.clone().map_or(Value::Null, Value::Text),
                Value::Bool(c.name == "id" || c.name == "name"),
            ]
        })
        .collect();
    assert_eq!(shown, expected);
    let (_, _, rows) = run(include_str!("testdata/psql_dplus_columns.sql"), &[]);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].len(), 11);
    assert_eq!(rows[0][7], t("p"));
    assert_eq!(rows[1][7], t("x"));

    // Step 4: the indexes, primary key first.
    let (_, _, rows) = run(include_str!("testdata/psql_d_indexes.sql"), &[]);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][0], t("users_pkey"));
    assert_eq!(rows[0][1], Value::Bool(true));
    assert_eq!(
        rows[0][5],
        t("CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)")
    );
    assert_eq!(rows[0][6], t("PRIMARY KEY (id)"));
    assert_eq!(rows[0][7], t("p"));
    assert_eq!(rows[1][0], t("users_email_key"));
    assert_eq!(rows[1][2], Value::Bool(true));
    assert_eq!(rows[1][6], Value::Null);
    assert_eq!(
        rows[2][5],
        t("CREATE INDEX users_name ON public.users USING btree (name)")
    );

    // The rest: catalogs Meridian keeps nothing in.
    for (sql, columns) in [
        (include_str!("testdata/psql_d_policies.sql"), 6),
        (include_str!("testdata/psql_d_statistics.sql"), 9),
        (include_str!("testdata/psql_d_publications.sql"), 3),
        (include_str!("testdata/psql_d_parents.sql"), 1),
        (include_str!("testdata/psql_d_children.sql"), 4),
    ] {
        let (names, _, rows) = run(sql, &[]);
        assert_eq!(names.len(), columns, "{sql}");
        assert!(rows.is_empty());
    }
}

#[test]
fn psql_list_schemas_and_databases() {
    let (names, _, rows) = run(include_str!("testdata/psql_dn.sql"), &[]);
    assert_eq!(names, ["Name", "Owner"]);
    assert_eq!(rows, vec![vec![t("public"), t("meridian")]]);
    let (names, _, rows) = run(include_str!("testdata/psql_l.sql"), &[]);
    assert_eq!(names[0], "Name");
    assert_eq!(rows[0][..3], [t("meridian"), t("meridian"), t("UTF8")]);
}

#[test]
fn tokio_postgres_type_lookup() {
    let q = query(include_str!("testdata/tokio_postgres_typeinfo.sql"));
    assert_eq!(q.param_types(), &[WireType::oid()]);
    let (_, oids, rows) = run(
        include_str!("testdata/tokio_postgres_typeinfo.sql"),
        &[Value::Int(1700)],
    );
    assert_eq!(oids, [NAME, CHAR, OID, OID, OID, NAME, OID]);
    assert_eq!(
        rows,
        vec![vec![
            t("numeric"),
            t("b"),
            Value::Int(0),
            Value::Null,
            Value::Int(0),
            t("pg_catalog"),
            Value::Int(0)
        ]]
    );
    let (_, _, rows) = run(
        include_str!("testdata/tokio_postgres_typeinfo_fallback.sql"),
        &[Value::Int(23)],
    );
    assert_eq!(rows[0][0], t("int4"));
    assert!(run(
        include_str!("testdata/tokio_postgres_typeinfo.sql"),
        &[Value::Int(99999)]
    )
    .2
    .is_empty());
    let (names, _, rows) = run(
        include_str!("testdata/tokio_postgres_enum.sql"),
        &[Value::Int(23)],
    );
    assert_eq!(names, ["enumlabel"]);
    assert!(rows.is_empty());
    let (names, oids, rows) = run(
        include_str!("testdata/tokio_postgres_composite.sql"),
        &[Value::Int(0)],
    );
    assert_eq!(names, ["attname", "atttypid"]);
    assert_eq!(oids, [NAME, OID]);
    assert!(rows.is_empty());
}

#[test]
fn psycopg_type_info() {
    let q = query(include_str!("testdata/psycopg_typeinfo.sql"));
    assert_eq!(q.param_types(), &[WireType::text()]);
    for name in ["int4", "integer", "pg_catalog.int4"] {
        let (names, oids, rows) = run(include_str!("testdata/psycopg_typeinfo.sql"), &[t(name)]);
        assert_eq!(names, ["name", "oid", "array_oid", "regtype", "delimiter"]);
        assert_eq!(oids, [NAME, OID, OID, TEXT, CHAR]);
        assert_eq!(
            rows,
            vec![vec![
                t("int4"),
                Value::Int(23),
                Value::Int(1007),
                t("integer"),
                t(",")
            ]]
        );
    }
    assert!(run(
        include_str!("testdata/psycopg_typeinfo.sql"),
        &[t("hstore")]
    )
    .2
    .is_empty());
}

#[test]
fn jdbc_field_metadata_has_no_rows() {
    let (names, _, rows) = run(include_str!("testdata/jdbc_field_metadata.sql"), &[]);
    assert_eq!(names.len(), 7);
    assert!(rows.is_empty());
}

#[test]
fn ordinary_queries_are_not_catalog_queries() {
    for sql in [
        "SELECT * FROM users",
        "SELECT 1",
        "INSERT INTO pg_class VALUES (1)",
        "SELECT * FROM pg_catalog.pg_stat_activity",
        "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relpages > 10",
    ] {
        assert_eq!(CatalogQuery::recognize(sql), None, "{sql}");
    }
}

#[test]
fn relation_oids_are_stable_user_oids() {
    assert_eq!(relation_oid("users"), relation_oid("users"));
    assert_ne!(relation_oid("users"), relation_oid("orders"));
    assert!(relation_oid("x") >= 16_384);
    assert!(relation_oid("x") <= i32::MAX as u32);
}
