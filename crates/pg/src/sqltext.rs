//! Just enough SQL lexing for the wire layer.
//!
//! The wire layer never parses SQL — the SQL layer does — but it needs four
//! cheap facts about query text:
//!
//! - where one statement of a multi-statement simple query ends
//!   ([`split_statements`]), to answer catalog queries between ordinary ones
//!   and to pair each result with its statement;
//! - a statement's leading keyword ([`first_keyword`]), for the command tag
//!   of statements that return rows (`INSERT ... RETURNING` is `INSERT 0 n`,
//!   not `SELECT n`) and to spot transaction control;
//! - a canonical spelling ([`normalize`]: whitespace runs outside literals
//!   collapsed to one space) to recognise the catalog queries of known
//!   clients whatever their indentation;
//! - the top-level items of a `SELECT` list and where its `FROM` starts
//!   ([`split_select`]).
//!
//! All of it respects PostgreSQL's lexical rules for what can hide a
//! semicolon or a comma: `'strings'` (with `''`), `E'escapes\''`,
//! `"identifiers"`, `$tag$dollar quotes$tag$`, `-- line` and nested
//! `/* block */` comments, and parentheses.

use std::ops::Range;

/// One lexical piece the scanner cares about.
#[derive(Debug, PartialEq)]
enum Piece {
    /// A quoted string, identifier or dollar-quoted body.
    Quoted,
    /// A comment.
    Comment,
    /// Whitespace.
    Space,
    /// Any other single byte (punctuation, words, numbers...).
    Byte(u8),
}

/// Scans `sql`, calling `visit` with each piece and its byte range.
fn scan(sql: &str, mut visit: impl FnMut(Piece, Range<usize>)) {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let c = b[i];
        match c {
            b'\'' => {
                // E'...' strings allow backslash escapes.
                let escapes = start > 0
                    && matches!(b[start - 1], b'e' | b'E')
                    && (start < 2 || !is_ident_byte(b[start - 2]));
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\'' {
                        if i + 1 < b.len() && b[i + 1] == b'\'' {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                visit(Piece::Quoted, start..i);
            }
            b'"' => {
                i += 1;
                while i < b.len() {
                    if b[i] == b'"' {
                        if i + 1 < b.len() && b[i + 1] == b'"' {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                visit(Piece::Quoted, start..i);
            }
            b'$' if start == 0 || !is_ident_byte(b[start - 1]) => {
                // $tag$ ... $tag$, where tag is empty or an identifier.
                let mut j = i + 1;
                while j < b.len() && is_ident_byte(b[j]) && !b[j].is_ascii_digit() {
                    j += 1;
                }
                if j < b.len() && b[j] == b'$' {
                    let tag = &sql[i..=j];
                    match sql[j + 1..].find(tag) {
                        Some(end) => i = j + 1 + end + tag.len(),
                        None => i = b.len(),
                    }
                    visit(Piece::Quoted, start..i);
                } else {
                    i += 1;
                    visit(Piece::Byte(c), start..i);
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                visit(Piece::Comment, start..i);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                visit(Piece::Comment, start..i.min(b.len()));
            }
            c if c.is_ascii_whitespace() => {
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                visit(Piece::Space, start..i);
            }
            c => {
                i += 1;
                visit(Piece::Byte(c), start..i);
            }
        }
    }
}

/// Whether `c` can continue an identifier.
fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// The statements of `sql`, split at top-level semicolons, trimmed, empty
/// ones (only whitespace, comments and semicolons) left out.
pub(crate) fn split_statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut has_content = false;
    scan(sql, |piece, range| match piece {
        Piece::Byte(b';') => {
            if has_content {
                out.push(sql[start..range.start].trim());
            }
            start = range.end;
            has_content = false;
        }
        Piece::Space | Piece::Comment => {}
        _ => has_content = true,
    });
    if has_content {
        out.push(sql[start..].trim());
    }
    out
}

/// The first keyword of `stmt`, uppercased (skipping comments and opening
/// parentheses); empty if there is none.
pub(crate) fn first_keyword(stmt: &str) -> String {
    let mut word = String::new();
    let mut done = false;
    scan(stmt, |piece, range| {
        if done {
            return;
        }
        match piece {
            Piece::Byte(c) if is_ident_byte(c) => word.push_str(&stmt[range]),
            Piece::Byte(b'(') | Piece::Space | Piece::Comment if word.is_empty() => {}
            _ => done = true,
        }
    });
    word.make_ascii_uppercase();
    word
}

/// `sql` with comments dropped, whitespace runs outside literals collapsed
/// to one space, no space just inside parentheses or before a comma, and
/// trailing semicolons and spaces removed.
pub(crate) fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut pending_space = false;
    scan(sql, |piece, range| match piece {
        Piece::Space | Piece::Comment => pending_space = !out.is_empty(),
        piece => {
            let text = &sql[range];
            let no_space_before = matches!(piece, Piece::Byte(b')' | b','));
            if pending_space && !no_space_before && !out.ends_with('(') {
                out.push(' ');
            }
            pending_space = false;
            out.push_str(text);
        }
    });
    while out.ends_with(';') || out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The top-level items of the first `SELECT` list in `sql` (between the
/// leading `SELECT` and the first top-level `FROM`, or the end), trimmed.
#[cfg(test)]
fn select_list(sql: &str) -> Vec<&str> {
    split_select(sql).0
}

/// Splits a `SELECT` into its top-level select items and the rest of the
/// statement from the first top-level `FROM` on (empty if there is none).
pub(crate) fn split_select(sql: &str) -> (Vec<&str>, &str) {
    let lower = sql.to_ascii_lowercase();
    let Some(select) = lower.find("select") else {
        return (Vec::new(), "");
    };
    let body_start = select + "select".len();
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut item_start = body_start;
    let mut end = sql.len();
    let mut stopped = false;
    scan(&sql[body_start..], |piece, range| {
        if stopped {
            return;
        }
        let (start, stop) = (range.start + body_start, range.end + body_start);
        match piece {
            Piece::Byte(b'(') => depth += 1,
            Piece::Byte(b')') => depth -= 1,
            Piece::Byte(b',') if depth == 0 => {
                items.push(sql[item_start..start].trim());
                item_start = stop;
            }
            Piece::Byte(c)
                if depth == 0
                    && (c == b'f' || c == b'F')
                    && lower[start..].starts_with("from")
                    && !is_ident_byte(*lower.as_bytes().get(start + 4).unwrap_or(&b' '))
                    && (start == 0 || !is_ident_byte(lower.as_bytes()[start - 1])) =>
            {
                end = start;
                stopped = true;
            }
            _ => {}
        }
    });
    let last = sql[item_start..end].trim();
    if !last.is_empty() {
        items.push(last);
    }
    (items, &sql[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let sql = "SELECT 'a;b', \"x;y\"; -- c;\n INSERT INTO t VALUES ($$;$$, E'\\';');;\n/* ; /* ; */ */ ";
        assert_eq!(
            split_statements(sql),
            vec![
                "SELECT 'a;b', \"x;y\"",
                "-- c;\n INSERT INTO t VALUES ($$;$$, E'\\';')"
            ]
        );
        assert!(split_statements(" ; ;; -- nothing\n").is_empty());
    }

    #[test]
    fn first_keywords() {
        assert_eq!(first_keyword("  insert into t"), "INSERT");
        assert_eq!(first_keyword("/* hi */ (select 1)"), "SELECT");
        assert_eq!(first_keyword("-- x\nCOMMIT"), "COMMIT");
        assert_eq!(first_keyword(""), "");
    }

    #[test]
    fn normalizes_layout_but_not_literals() {
        assert_eq!(
            normalize("SELECT  a ,\n  b\nFROM t\n WHERE x = 'two  spaces' ( c ) ;"),
            "SELECT a, b FROM t WHERE x = 'two  spaces' (c)"
        );
    }

    #[test]
    fn select_lists() {
        assert_eq!(
            select_list("SELECT a, f(b, c) AS x, 'from, here' FROM t WHERE y IN (1, 2)"),
            vec!["a", "f(b, c) AS x", "'from, here'"]
        );
        assert_eq!(select_list("select 1"), vec!["1"]);
        assert_eq!(
            select_list("SELECT fromage, x FROM t"),
            vec!["fromage", "x"]
        );
        let (items, rest) = split_select("SELECT (SELECT a FROM b), c FROM d WHERE e");
        assert_eq!(items, vec!["(SELECT a FROM b)", "c"]);
        assert_eq!(rest, "FROM d WHERE e");
    }
}
