//! Aligned result tables, laid out byte for byte like `psql`'s default
//! `aligned` format with `border 1`:
//!
//! ```text
//!  id | name  | balance
//! ----+-------+---------
//!   1 | alice |   10.50
//!  22 | bob   |
//! (2 rows)
//! ```
//!
//! - Headers are centred over their column; cells are left-aligned, except
//!   numeric types (by type OID: int2/4/8, float4/8, numeric, oid, money),
//!   which are right-aligned.
//! - NULL prints as nothing. A value with newlines spans several lines, each
//!   but the last marked with `+` at the column's right edge.
//! - Widths count terminal columns (East Asian wide characters take two) and
//!   tabs expand to the next multiple of 8.
//! - Left-aligned text in the last column carries no trailing spaces.
//! - A footer `(N rows)` and an empty line follow (the \d listings use a
//!   title line above and free-form footers instead).
//!
//! Left out: `psql`'s other formats (expanded `\x`, wrapped, unaligned,
//! border 0/2, Unicode lines) and escaping of control characters.

use unicode_width::UnicodeWidthStr;

use super::conn::{ColumnDesc, TextRow};

/// Type OIDs whose values `psql` right-aligns.
const NUMERIC_OIDS: &[u32] = &[
    20,   // int8
    21,   // int2
    23,   // int4
    26,   // oid
    28,   // xid
    29,   // cid
    700,  // float4
    701,  // float8
    790,  // money
    1700, // numeric
    5069, // xid8
];

/// Whether values of the type with this OID are right-aligned.
pub fn is_numeric(type_oid: u32) -> bool {
    NUMERIC_OIDS.contains(&type_oid)
}

/// A table ready to print.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// An optional title, centred above the table.
    pub title: Option<String>,
    /// Column headers.
    pub headers: Vec<String>,
    /// Whether each column is right-aligned.
    pub right_aligned: Vec<bool>,
    /// The cells; `None` is NULL.
    pub rows: Vec<TextRow>,
    /// Lines printed after the table; `None` prints `(N rows)`.
    pub footers: Option<Vec<String>>,
}

impl Table {
    /// A query result: headers from the columns, alignment from their types.
    pub fn from_result(columns: &[ColumnDesc], rows: Vec<TextRow>) -> Self {
        Self {
            title: None,
            headers: columns.iter().map(|c| c.name.clone()).collect(),
            right_aligned: columns.iter().map(|c| is_numeric(c.type_oid)).collect(),
            rows,
            footers: None,
        }
    }

    /// A table of text columns (the meta commands' listings).
    pub fn text(title: &str, headers: &[&str], rows: Vec<TextRow>) -> Self {
        Self {
            title: Some(title.to_string()),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            right_aligned: vec![false; headers.len()],
            rows,
            footers: None,
        }
    }

    /// Renders the table, ending with an empty line.
    pub fn render(&self) -> String {
        let ncols = self.headers.len();
        let mut out = String::new();
        if ncols == 0 {
            out.push_str("--\n");
            self.render_footer(&mut out);
            return out;
        }
        // Every cell as lines of display text.
        let header_lines: Vec<Vec<String>> = self.headers.iter().map(|h| cell_lines(h)).collect();
        let body: Vec<Vec<Vec<String>>> = self
            .rows
            .iter()
            .map(|row| {
                (0..ncols)
                    .map(|j| cell_lines(row.get(j).and_then(|v| v.as_deref()).unwrap_or("")))
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = header_lines
            .iter()
            .map(|lines| lines.iter().map(|l| l.width()).max().unwrap_or(0))
            .collect();
        for row in &body {
            for (j, lines) in row.iter().enumerate() {
                for line in lines {
                    widths[j] = widths[j].max(line.width());
                }
            }
        }

        if let Some(title) = &self.title {
            let total: usize = widths.iter().map(|w| w + 3).sum::<usize>() - 1;
            let pad = total.saturating_sub(title.width()) / 2;
            out.push_str(&" ".repeat(pad));
            out.push_str(title);
            out.push('\n');
        }

        // Headers: centred, each followed by a space (even the last).
        let header_height = header_lines.iter().map(Vec::len).max().unwrap_or(1);
        for l in 0..header_height {
            for (j, lines) in header_lines.iter().enumerate() {
                let text = lines.get(l).map(String::as_str).unwrap_or("");
                let room = widths[j] - text.width();
                out.push(' ');
                out.push_str(&" ".repeat(room / 2));
                out.push_str(text);
                out.push_str(&" ".repeat(room - room / 2));
                let more = l + 1 < lines.len();
                out.push(if more { '+' } else { ' ' });
                if j + 1 < ncols {
                    out.push('|');
                }
            }
            out.push('\n');
        }
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        out.push_str(&rule.join("+"));
        out.push('\n');

        for row in &body {
            let height = row.iter().map(Vec::len).max().unwrap_or(1);
            for l in 0..height {
                for (j, lines) in row.iter().enumerate() {
                    let last = j + 1 == ncols;
                    let more = l + 1 < lines.len();
                    out.push(' ');
                    match lines.get(l) {
                        None => {
                            if !last {
                                out.push_str(&" ".repeat(widths[j]));
                            }
                        }
                        Some(text) => {
                            let room = widths[j] - text.width();
                            if self.right_aligned[j] {
                                out.push_str(&" ".repeat(room));
                                out.push_str(text);
                            } else {
                                out.push_str(text);
                                if !last || more {
                                    out.push_str(&" ".repeat(room));
                                }
                            }
                        }
                    }
                    if more {
                        out.push('+');
                    } else if !last {
                        out.push(' ');
                    }
                    if !last {
                        out.push('|');
                    }
                }
                out.push('\n');
            }
        }
        self.render_footer(&mut out);
        out
    }

    fn render_footer(&self, out: &mut String) {
        match &self.footers {
            None => {
                let n = self.rows.len();
                out.push_str(&format!("({n} row{})\n", if n == 1 { "" } else { "s" }));
            }
            Some(lines) => {
                for line in lines {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out.push('\n');
    }
}

/// A cell's display lines: split at newlines, tabs expanded to multiples of 8.
fn cell_lines(value: &str) -> Vec<String> {
    value
        .split('\n')
        .map(|line| {
            if !line.contains('\t') {
                return line.to_string();
            }
            let mut out = String::new();
            for c in line.chars() {
                if c == '\t' {
                    let col = out.width();
                    out.push_str(&" ".repeat(8 - col % 8));
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, type_oid: u32) -> ColumnDesc {
        ColumnDesc {
            name: name.to_string(),
            type_oid,
        }
    }

    fn row(cells: &[Option<&str>]) -> TextRow {
        cells.iter().map(|c| c.map(str::to_string)).collect()
    }

    // The expected outputs below are what psql 15 prints for the same
    // results (`psql -X -c ...`), trailing spaces included.

    #[test]
    fn numbers_right_text_left_null_empty_wide_characters_and_newlines() {
        let table = Table::from_result(
            &[
                col("id", 23),
                col("name", 25),
                col("bal", 1700),
                col("note", 1043),
                col("b", 16),
            ],
            vec![
                row(&[
                    Some("1"),
                    Some("alice"),
                    Some("10.50"),
                    Some("multi\nline"),
                    Some("t"),
                ]),
                row(&[Some("3"), Some("日本語"), Some("-1.00"), Some("x"), None]),
                row(&[Some("22"), Some("bob"), None, None, Some("f")]),
            ],
        );
        let expected = concat!(
            " id |  name  |  bal  | note  | b \n",
            "----+--------+-------+-------+---\n",
            "  1 | alice  | 10.50 | multi+| t\n",
            "    |        |       | line  | \n",
            "  3 | 日本語 | -1.00 | x     | \n",
            " 22 | bob    |       |       | f\n",
            "(3 rows)\n",
            "\n",
        );
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn headers_are_centred_and_one_row_is_singular() {
        let table = Table::from_result(
            &[col("x", 25), col("y", 23)],
            vec![row(&[Some("aaaaaaaaaaaaa"), Some("1")])],
        );
        let expected = concat!(
            "       x       | y \n",
            "---------------+---\n",
            " aaaaaaaaaaaaa | 1\n",
            "(1 row)\n",
            "\n",
        );
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn multi_line_values_in_the_last_column() {
        let table = Table::from_result(
            &[col("w", 23), col("z", 25)],
            vec![
                row(&[Some("1"), Some("a\nlonger")]),
                row(&[Some("2"), Some("b")]),
            ],
        );
        let expected = concat!(
            " w |   z    \n",
            "---+--------\n",
            " 1 | a     +\n",
            "   | longer\n",
            " 2 | b\n",
            "(2 rows)\n",
            "\n",
        );
        assert_eq!(table.render(), expected);

        let table = Table::from_result(
            &[col("z", 25), col("w", 23)],
            vec![row(&[Some("a\nlonger"), Some("1")])],
        );
        let expected = concat!(
            "   z    | w \n",
            "--------+---\n",
            " a     +| 1\n",
            " longer | \n",
            "(1 row)\n",
            "\n",
        );
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn empty_results_nulls_in_numeric_columns_and_tabs() {
        let table = Table::from_result(&[col("id", 23), col("name", 25)], vec![]);
        assert_eq!(table.render(), " id | name \n----+------\n(0 rows)\n\n");
        let table = Table::from_result(
            &[col("f", 701), col("n", 23)],
            vec![row(&[Some("1.5"), None])],
        );
        assert_eq!(
            table.render(),
            "  f  | n \n-----+---\n 1.5 |  \n(1 row)\n\n"
        );
        let table = Table::from_result(
            &[col("t", 25), col("long header name", 25)],
            vec![row(&[Some("tab\there"), Some("x")])],
        );
        assert_eq!(
            table.render(),
            concat!(
                "      t       | long header name \n",
                "--------------+------------------\n",
                " tab     here | x\n",
                "(1 row)\n",
                "\n",
            )
        );
    }

    #[test]
    fn titles_are_centred_and_footers_replace_the_row_count() {
        let mut table = Table::text(
            "List of relations",
            &["Schema", "Name", "Type"],
            vec![row(&[Some("public"), Some("t"), Some("table")])],
        );
        assert_eq!(
            table.render(),
            concat!(
                "   List of relations\n",
                " Schema | Name | Type  \n",
                "--------+------+-------\n",
                " public | t    | table\n",
                "(1 row)\n",
                "\n",
            )
        );
        table.footers = Some(vec![
            "Indexes:".into(),
            "    \"t_pkey\" PRIMARY KEY, btree (id)".into(),
        ]);
        assert!(table
            .render()
            .ends_with("table\nIndexes:\n    \"t_pkey\" PRIMARY KEY, btree (id)\n\n"));
    }
}
