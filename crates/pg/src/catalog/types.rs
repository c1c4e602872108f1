//! The emulated `pg_type`: the types of the SQL API and the catalog's own
//! (`oid`, `name`, `"char"`, `unknown`), and `to_regtype`'s name lookup.

/// One row of the emulated `pg_type`.
#[derive(Debug)]
pub(super) struct TypeRow {
    /// The type OID.
    pub oid: u32,
    /// `typname`.
    pub name: &'static str,
    /// The array type's OID.
    pub array: u32,
    /// The SQL spelling (`regtype` output).
    pub sql_name: &'static str,
    /// `typlen`.
    pub len: i16,
}

/// The types Meridian knows (the SQL API's types and the catalog's own).
pub(super) const TYPES: &[TypeRow] = &[
    TypeRow {
        oid: 16,
        name: "bool",
        array: 1000,
        sql_name: "boolean",
        len: 1,
    },
    TypeRow {
        oid: 17,
        name: "bytea",
        array: 1001,
        sql_name: "bytea",
        len: -1,
    },
    TypeRow {
        oid: 18,
        name: "char",
        array: 1002,
        sql_name: "\"char\"",
        len: 1,
    },
    TypeRow {
        oid: 19,
        name: "name",
        array: 1003,
        sql_name: "name",
        len: 64,
    },
    TypeRow {
        oid: 20,
        name: "int8",
        array: 1016,
        sql_name: "bigint",
        len: 8,
    },
    TypeRow {
        oid: 21,
        name: "int2",
        array: 1005,
        sql_name: "smallint",
        len: 2,
    },
    TypeRow {
        oid: 23,
        name: "int4",
        array: 1007,
        sql_name: "integer",
        len: 4,
    },
    TypeRow {
        oid: 25,
        name: "text",
        array: 1009,
        sql_name: "text",
        len: -1,
    },
    TypeRow {
        oid: 26,
        name: "oid",
        array: 1028,
        sql_name: "oid",
        len: 4,
    },
    TypeRow {
        oid: 700,
        name: "float4",
        array: 1021,
        sql_name: "real",
        len: 4,
    },
    TypeRow {
        oid: 701,
        name: "float8",
        array: 1022,
        sql_name: "double precision",
        len: 8,
    },
    TypeRow {
        oid: 705,
        name: "unknown",
        array: 0,
        sql_name: "unknown",
        len: -2,
    },
    TypeRow {
        oid: 1042,
        name: "bpchar",
        array: 1014,
        sql_name: "character",
        len: -1,
    },
    TypeRow {
        oid: 1043,
        name: "varchar",
        array: 1015,
        sql_name: "character varying",
        len: -1,
    },
    TypeRow {
        oid: 1082,
        name: "date",
        array: 1182,
        sql_name: "date",
        len: 4,
    },
    TypeRow {
        oid: 1114,
        name: "timestamp",
        array: 1115,
        sql_name: "timestamp without time zone",
        len: 8,
    },
    TypeRow {
        oid: 1184,
        name: "timestamptz",
        array: 1185,
        sql_name: "timestamp with time zone",
        len: 8,
    },
    TypeRow {
        oid: 1186,
        name: "interval",
        array: 1187,
        sql_name: "interval",
        len: 16,
    },
    TypeRow {
        oid: 1700,
        name: "numeric",
        array: 1231,
        sql_name: "numeric",
        len: -1,
    },
];

/// The type a name denotes, as `to_regtype` resolves it.
pub(super) fn type_by_name(name: &str) -> Option<&'static TypeRow> {
    let name = name.trim().trim_matches('"').to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let name = match name {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "float" | "double precision" => "float8",
        "boolean" => "bool",
        "decimal" => "numeric",
        "character varying" => "varchar",
        "character" => "bpchar",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        other => other,
    };
    TYPES.iter().find(|t| t.name == name || t.sql_name == name)
}
