//! `\d` and friends: listing and describing tables from the server's
//! catalog.
//!
//! The shell sends **the same catalog queries as `psql` 15** (captured with
//! `psql -E`) and lays the answers out the same way. PostgreSQL answers them
//! from its system catalogs; Meridian's wire front end recognises exactly
//! these query shapes and answers them from its own catalog (see
//! `meridian_pg`'s `catalog` module). Keeping to psql's queries means one
//! emulation serves both `psql` and `meridian sql`.
//!
//! - `\d` / `\dt` `[PATTERN]`: the `pg_class` listing (`List of relations`).
//! - `\d PATTERN`: the relations matching (by `pg_class` name regex), then
//!   for each its kind (`pg_class`), columns (`pg_attribute` with
//!   `format_type`, `pg_attrdef` and collation) and indexes (`pg_index` with
//!   `pg_get_indexdef` and `pg_constraint`).
//!
//! Patterns are converted to regular expressions as psql does: `*` is any
//! run of characters, `?` one character, unquoted letters fold to lower
//! case, `"..."` quotes, and a `.` outside quotes separates schema from name.
//!
//! Left out: psql's other footers (check and foreign-key constraints,
//! policies, triggers, publications, partitions, inheritance), and the
//! details of views, sequences and indexes (only their columns' names and
//! types are shown).

use super::conn::{Connection, Output, ServerMessage, TextRow};
use super::table::Table;

/// Why a catalog command failed.
#[derive(Debug)]
pub enum Failure {
    /// The server refused a query.
    Server(ServerMessage),
    /// The connection broke.
    Connection(String),
}

/// What a catalog command shows.
#[derive(Debug)]
pub enum Shown {
    /// Tables, for stdout.
    Tables(Vec<Table>),
    /// A message that nothing matched, for stderr (as `psql` does).
    NotFound(String),
}

/// Runs one query and returns its rows.
async fn rows(conn: &mut Connection, sql: &str) -> Result<Vec<TextRow>, Failure> {
    for output in conn.simple_query(sql).await.map_err(Failure::Connection)? {
        match output {
            Output::Rows { rows, .. } => return Ok(rows),
            Output::Error(err) => return Err(Failure::Server(err)),
            _ => {}
        }
    }
    Ok(Vec::new())
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn cell(row: &TextRow, i: usize) -> &str {
    row.get(i).and_then(|c| c.as_deref()).unwrap_or("")
}

/// A psql name pattern, cut at the `.` (outside quotes) between schema and
/// name, each part as a regular expression like psql's `^(...)$`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern {
    /// The schema part, if the pattern had one.
    pub schema: Option<String>,
    /// The name part.
    pub name: String,
}

/// Converts a psql pattern (`*`, `?`, `"quoted"`, `schema.name`) to regular
/// expressions the way psql's `processSQLNamePattern` does.
pub fn name_pattern(pattern: &str) -> NamePattern {
    let mut parts = vec![String::new()];
    let mut in_quotes = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let part = parts.last_mut().expect("one part at least");
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                part.push('"');
            }
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => parts.push(String::new()),
            '*' if !in_quotes => part.push_str(".*"),
            '?' if !in_quotes => part.push('.'),
            c if "|*+?()[]{}.^$\\".contains(c) => {
                part.push('\\');
                part.push(c);
            }
            c if !in_quotes => part.extend(c.to_lowercase()),
            c => part.push(c),
        }
    }
    let regex = |p: &str| format!("^({p})$");
    let name = parts.pop().expect("one part at least");
    NamePattern {
        schema: parts.pop().map(|s| regex(&s)),
        name: regex(&name),
    }
}

/// The relation-kind `CASE` of psql's listing.
const KIND_CASE: &str = "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END";

/// psql's `\d` / `\dt` listing query.
pub fn list_query(tables_only: bool, pattern: Option<&str>) -> String {
    let kinds = match (tables_only, pattern.is_some()) {
        (true, false) => "'r','p',''",
        (true, true) => "'r','p','t','s',''",
        (false, _) => "'r','p','v','m','S','f',''",
    };
    let mut sql = format!(
        "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  {KIND_CASE} as \"Type\",\n  \
         pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\"\n\
         FROM pg_catalog.pg_class c\n     \
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n     \
         LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam\n\
         WHERE c.relkind IN ({kinds})\n"
    );
    match pattern.map(name_pattern) {
        None => sql.push_str(
            "      AND n.nspname <> 'pg_catalog'\n      AND n.nspname !~ '^pg_toast'\n      \
             AND n.nspname <> 'information_schema'\n  AND pg_catalog.pg_table_is_visible(c.oid)\n",
        ),
        Some(p) => {
            sql.push_str(&format!(
                "  AND c.relname OPERATOR(pg_catalog.~) {} COLLATE pg_catalog.default\n",
                literal(&p.name)
            ));
            match p.schema {
                Some(schema) => sql.push_str(&format!(
                    "  AND n.nspname OPERATOR(pg_catalog.~) {} COLLATE pg_catalog.default\n",
                    literal(&schema)
                )),
                None => sql.push_str("  AND pg_catalog.pg_table_is_visible(c.oid)\n"),
            }
        }
    }
    sql.push_str("ORDER BY 1,2;");
    sql
}

/// psql's query finding the relations a `\d PATTERN` names.
pub fn find_query(pattern: &str) -> String {
    let p = name_pattern(pattern);
    let mut sql = format!(
        "SELECT c.oid,\n  n.nspname,\n  c.relname\n\
         FROM pg_catalog.pg_class c\n     \
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n\
         WHERE c.relname OPERATOR(pg_catalog.~) {} COLLATE pg_catalog.default\n",
        literal(&p.name)
    );
    match p.schema {
        Some(schema) => sql.push_str(&format!(
            "  AND n.nspname OPERATOR(pg_catalog.~) {} COLLATE pg_catalog.default\n",
            literal(&schema)
        )),
        None => sql.push_str("  AND pg_catalog.pg_table_is_visible(c.oid)\n"),
    }
    sql.push_str("ORDER BY 2, 3;");
    sql
}

/// psql's query for a relation's kind (and more, which the shell ignores).
fn kind_query(oid: &str) -> String {
    format!(
        "SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers, \
         c.relrowsecurity, c.relforcerowsecurity, false AS relhasoids, c.relispartition, '', \
         c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE \
         c.reloftype::pg_catalog.regtype::pg_catalog.text END, c.relpersistence, \
         c.relreplident, am.amname\n\
         FROM pg_catalog.pg_class c\n \
         LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)\n\
         LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid)\n\
         WHERE c.oid = {};",
        literal(oid)
    )
}

/// psql's query for a relation's columns.
fn columns_query(oid: &str) -> String {
    format!(
        "SELECT a.attname,\n  pg_catalog.format_type(a.atttypid, a.atttypmod),\n  \
         (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)\n   \
         FROM pg_catalog.pg_attrdef d\n   \
         WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),\n  \
         a.attnotnull,\n  \
         (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t\n   \
         WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,\n  \
         a.attidentity,\n  a.attgenerated\n\
         FROM pg_catalog.pg_attribute a\n\
         WHERE a.attrelid = {} AND a.attnum > 0 AND NOT a.attisdropped\n\
         ORDER BY a.attnum;",
        literal(oid)
    )
}

/// psql's query for a table's indexes.
fn indexes_query(oid: &str) -> String {
    format!(
        "SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid, \
         pg_catalog.pg_get_indexdef(i.indexrelid, 0, true),\n  \
         pg_catalog.pg_get_constraintdef(con.oid, true), contype, condeferrable, condeferred, \
         i.indisreplident, c2.reltablespace\n\
         FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i\n  \
         LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x'))\n\
         WHERE c.oid = {} AND c.oid = i.indrelid AND i.indexrelid = c2.oid\n\
         ORDER BY i.indisprimary DESC, c2.relname;",
        literal(oid)
    )
}

/// `\d` (all relations) or `\dt` (tables), optionally matching a pattern.
pub async fn list(
    conn: &mut Connection,
    tables_only: bool,
    pattern: Option<&str>,
) -> Result<Shown, Failure> {
    let listed = rows(conn, &list_query(tables_only, pattern)).await?;
    if listed.is_empty() {
        return Ok(Shown::NotFound(match pattern {
            None => "Did not find any relations.".to_string(),
            Some(p) => format!("Did not find any relation named \"{p}\"."),
        }));
    }
    Ok(Shown::Tables(vec![Table::text(
        "List of relations",
        &["Schema", "Name", "Type", "Owner"],
        listed,
    )]))
}

/// One line of the `Indexes:` footer from a row of [`indexes_query`], as
/// psql's `describeOneTableDetails` writes it.
pub fn index_line(row: &TextRow) -> String {
    let t = |i: usize| cell(row, i) == "t";
    let mut line = format!("    \"{}\"", cell(row, 0));
    if t(1) {
        line.push_str(" PRIMARY KEY,");
    } else if t(2) {
        if cell(row, 7) == "u" {
            line.push_str(" UNIQUE CONSTRAINT,");
        } else {
            line.push_str(" UNIQUE,");
        }
    }
    let indexdef = cell(row, 5);
    let method = indexdef
        .split_once(" USING ")
        .map_or(indexdef, |(_, rest)| rest);
    line.push(' ');
    line.push_str(method);
    if t(8) {
        line.push_str(" DEFERRABLE");
    }
    if t(9) {
        line.push_str(" INITIALLY DEFERRED");
    }
    if t(3) {
        line.push_str(" CLUSTER");
    }
    if !t(4) {
        line.push_str(" INVALID");
    }
    if t(10) {
        line.push_str(" REPLICA IDENTITY");
    }
    line
}

/// One row of the column listing from a row of [`columns_query`].
fn column_row(row: &TextRow) -> TextRow {
    let default = match (cell(row, 5), cell(row, 6)) {
        ("a", _) => "generated always as identity".to_string(),
        ("d", _) => "generated by default as identity".to_string(),
        (_, "s") => format!("generated always as ({}) stored", cell(row, 2)),
        _ => cell(row, 2).to_string(),
    };
    vec![
        Some(cell(row, 0).to_string()),
        Some(cell(row, 1).to_string()),
        Some(cell(row, 4).to_string()),
        Some(if cell(row, 3) == "t" { "not null" } else { "" }.to_string()),
        Some(default),
    ]
}

/// `\d PATTERN`: describes every relation matching.
pub async fn describe(conn: &mut Connection, pattern: &str) -> Result<Shown, Failure> {
    let found = rows(conn, &find_query(pattern)).await?;
    if found.is_empty() {
        return Ok(Shown::NotFound(format!(
            "Did not find any relation named \"{pattern}\"."
        )));
    }
    let mut tables = Vec::new();
    for relation in &found {
        let (oid, schema, name) = (cell(relation, 0), cell(relation, 1), cell(relation, 2));
        // The kind decides the title; a server that cannot say is taken to
        // mean a table.
        let kind = rows(conn, &kind_query(oid))
            .await
            .ok()
            .and_then(|r| r.first().map(|row| cell(row, 1).to_string()))
            .unwrap_or_default();
        let title = match kind.as_str() {
            "i" | "I" => "Index",
            "v" => "View",
            "m" => "Materialized view",
            "S" => "Sequence",
            "f" => "Foreign table",
            "p" => "Partitioned table",
            _ => "Table",
        };
        let columns = rows(conn, &columns_query(oid)).await?;
        let is_table = matches!(kind.as_str(), "r" | "p" | "f" | "");
        let title = format!("{title} \"{schema}.{name}\"");
        let mut table = if is_table {
            Table::text(
                &title,
                &["Column", "Type", "Collation", "Nullable", "Default"],
                columns.iter().map(column_row).collect(),
            )
        } else {
            // Only names and types for indexes, views and sequences.
            Table::text(
                &title,
                &["Column", "Type"],
                columns
                    .iter()
                    .map(|r| column_row(r)[..2].to_vec())
                    .collect(),
            )
        };
        let mut footers = Vec::new();
        if is_table {
            let indexes = rows(conn, &indexes_query(oid)).await?;
            if !indexes.is_empty() {
                footers.push("Indexes:".to_string());
                footers.extend(indexes.iter().map(index_line));
            }
        }
        table.footers = Some(footers);
        tables.push(table);
    }
    Ok(Shown::Tables(tables))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_become_regular_expressions_like_psql() {
        let p = |s: &str| name_pattern(s);
        assert_eq!(
            p("Accounts"),
            NamePattern {
                schema: None,
                name: "^(accounts)$".into()
            }
        );
        assert_eq!(p("acc*").name, "^(acc.*)$");
        assert_eq!(p("t?").name, "^(t.)$");
        assert_eq!(p("\"MixedCase\"").name, "^(MixedCase)$");
        assert_eq!(p("\"a.b\"").name, "^(a\\.b)$");
        assert_eq!(p("we$ird").name, "^(we\\$ird)$");
        let qualified = p("Shop.Orders");
        assert_eq!(qualified.schema.as_deref(), Some("^(shop)$"));
        assert_eq!(qualified.name, "^(orders)$");
    }

    #[test]
    fn queries_are_psqls_own() {
        // Byte for byte what psql 15 sends for `\dt t*` (psql -E).
        assert_eq!(
            list_query(true, Some("t*")),
            "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as \"Type\",\n  pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\"\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam\nWHERE c.relkind IN ('r','p','t','s','')\n  AND c.relname OPERATOR(pg_catalog.~) '^(t.*)$' COLLATE pg_catalog.default\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;"
        );
        assert!(list_query(false, None).contains(
            "WHERE c.relkind IN ('r','p','v','m','S','f','')\n      AND n.nspname <> 'pg_catalog'\n      AND n.nspname !~ '^pg_toast'\n      AND n.nspname <> 'information_schema'\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;"
        ));
        assert_eq!(
            find_query("public.t"),
            "SELECT c.oid,\n  n.nspname,\n  c.relname\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default\n  AND n.nspname OPERATOR(pg_catalog.~) '^(public)$' COLLATE pg_catalog.default\nORDER BY 2, 3;"
        );
        assert!(columns_query("16384").contains("WHERE a.attrelid = '16384' AND a.attnum > 0"));
        assert!(indexes_query("16384").contains("WHERE c.oid = '16384' AND c.oid = i.indrelid"));
    }

    fn row(cells: &[&str]) -> TextRow {
        cells.iter().map(|c| Some(c.to_string())).collect()
    }

    #[test]
    fn index_lines_read_like_psql() {
        let pk = row(&[
            "t_pkey",
            "t",
            "t",
            "f",
            "t",
            "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)",
            "PRIMARY KEY (id)",
            "p",
            "f",
            "f",
            "f",
            "0",
        ]);
        assert_eq!(index_line(&pk), "    \"t_pkey\" PRIMARY KEY, btree (id)");
        let unique_constraint = row(&[
            "t_name_key",
            "f",
            "t",
            "f",
            "t",
            "CREATE UNIQUE INDEX t_name_key ON public.t USING btree (name)",
            "UNIQUE (name)",
            "u",
            "f",
            "f",
            "f",
            "0",
        ]);
        assert_eq!(
            index_line(&unique_constraint),
            "    \"t_name_key\" UNIQUE CONSTRAINT, btree (name)"
        );
        let mut unique = row(&[
            "t_u",
            "f",
            "t",
            "f",
            "t",
            "CREATE UNIQUE INDEX t_u ON public.t USING btree (a)",
        ]);
        unique.extend([None, None, None, None, None, None]);
        assert_eq!(index_line(&unique), "    \"t_u\" UNIQUE, btree (a)");
        let plain = row(&[
            "t_b",
            "f",
            "f",
            "f",
            "t",
            "CREATE INDEX t_b ON public.t USING btree (b, note)",
            "",
            "",
            "",
            "",
            "f",
            "0",
        ]);
        assert_eq!(index_line(&plain), "    \"t_b\" btree (b, note)");
    }
}
