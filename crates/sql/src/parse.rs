//! Parsing: SQL text to statements, with Meridian's extensions removed.
//!
//! sqlparser (PostgreSQL dialect) does the parsing. Before it sees the
//! text, the tokenizer splits it into statements at top-level semicolons
//! and each statement's `AS OF SYSTEM TIME <value>` clause (CockroachDB's
//! syntax for snapshot reads, which sqlparser does not know) is cut out of
//! the token stream and kept beside the statement. The clause may appear
//! anywhere in a statement (`SELECT ... FROM t AS OF SYSTEM TIME '-5s'
//! WHERE ...`, `BEGIN AS OF SYSTEM TIME ...`, `SET TRANSACTION AS OF SYSTEM
//! TIME ...`); its value is a string (a negative interval like `'-5s'`, a
//! timestamp, or nanoseconds since the epoch), a number of nanoseconds, or
//! a `$n` parameter.
//!
//! `ALTER TABLE ... SPLIT AT` and `ALTER TABLE ... RELOCATE`, which
//! sqlparser does not know, are recognized from the tokens first (see
//! `split.rs`) and kept beside a bare `ALTER TABLE <name>`.
//!
//! Syntax errors are reported like PostgreSQL's: `syntax error at or near
//! "x"` or `syntax error at end of input` (42601).

use meridian_error::{Error, Result};
use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::split::{self, AlterRanges};

/// Where an `AS OF SYSTEM TIME` clause's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AsOf {
    /// A literal (string or number) as written.
    Literal(String),
    /// Parameter `$i+1`.
    Param(usize),
    /// `with_max_staleness('<interval>')`: a bounded-staleness read.
    MaxStaleness(String),
}

/// One parsed statement.
#[derive(Clone, Debug)]
pub(crate) struct Parsed {
    /// The statement.
    pub stmt: ast::Statement,
    /// Its `AS OF SYSTEM TIME` clause, if it had one.
    pub as_of: Option<AsOf>,
    /// `ALTER TABLE ... SPLIT AT / RELOCATE` (then `stmt` is the bare
    /// `ALTER TABLE <name>`).
    pub alter_ranges: Option<AlterRanges>,
}

/// Parses every statement of `sql`. Empty statements are skipped. Nothing
/// is returned unless everything parses, as in PostgreSQL.
pub(crate) fn parse_sql(sql: &str) -> Result<Vec<Parsed>> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| Error::SyntaxError(format!("syntax error: {}", e.message)))?;
    let mut out = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    for token in tokens
        .into_iter()
        .chain(std::iter::once(TokenWithSpan::wrap(Token::SemiColon)))
    {
        if token.token == Token::SemiColon {
            let group = std::mem::take(&mut current);
            if group
                .iter()
                .any(|t| !matches!(t.token, Token::Whitespace(_)))
            {
                out.push(parse_one(group)?);
            }
        } else {
            current.push(token);
        }
    }
    Ok(out)
}

/// Parses one statement's tokens.
fn parse_one(mut tokens: Vec<TokenWithSpan>) -> Result<Parsed> {
    let as_of = strip_as_of(&mut tokens)?;
    // `SET TRANSACTION` left bare by removing its AS OF SYSTEM TIME.
    let words: Vec<&Token> = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    if as_of.is_some()
        && words.len() == 2
        && is_keyword(words[0], Keyword::SET)
        && is_keyword(words[1], Keyword::TRANSACTION)
    {
        return Ok(Parsed {
            stmt: ast::Statement::Set(ast::Set::SetTransaction {
                modes: vec![],
                snapshot: None,
                session: false,
            }),
            as_of,
            alter_ranges: None,
        });
    }
    if let Some(recognized) = split::parse(&tokens) {
        let (stmt, alter) = recognized?;
        if as_of.is_some() {
            return Err(Error::FeatureNotSupported(
                "AS OF SYSTEM TIME is only allowed on read-only statements".into(),
            ));
        }
        return Ok(Parsed {
            stmt,
            as_of,
            alter_ranges: Some(alter),
        });
    }
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let stmt = parser.parse_statement().map_err(syntax_error)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(Error::SyntaxError(format!(
            "syntax error at or near \"{}\"",
            next.token
        )));
    }
    Ok(Parsed {
        stmt,
        as_of,
        alter_ranges: None,
    })
}

/// Whether `t` is the unquoted keyword `k`.
fn is_keyword(t: &Token, k: Keyword) -> bool {
    matches!(t, Token::Word(w) if w.keyword == k && w.quote_style.is_none())
}

/// Removes `AS OF SYSTEM TIME <value>` from the tokens and returns the value.
fn strip_as_of(tokens: &mut Vec<TokenWithSpan>) -> Result<Option<AsOf>> {
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let keywords = [Keyword::AS, Keyword::OF, Keyword::SYSTEM, Keyword::TIME];
    for w in 0..significant.len() {
        let matches = keywords.iter().enumerate().all(|(k, kw)| {
            significant
                .get(w + k)
                .is_some_and(|&i| is_keyword(&tokens[i].token, *kw))
        });
        if !matches {
            continue;
        }
        let Some(&value_at) = significant.get(w + 4) else {
            return Err(Error::SyntaxError("syntax error at end of input".into()));
        };
        let mut last = value_at;
        let value = match &tokens[value_at].token {
            Token::SingleQuotedString(s) => AsOf::Literal(s.clone()),
            Token::Number(n, _) => AsOf::Literal(n.clone()),
            Token::Placeholder(p) => {
                let n: usize = p
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        Error::SyntaxError(format!("syntax error at or near \"{p}\""))
                    })?;
                AsOf::Param(n - 1)
            }
            Token::Word(word)
                if word.quote_style.is_none()
                    && word.value.eq_ignore_ascii_case("with_max_staleness") =>
            {
                // with_max_staleness ( [INTERVAL] '<interval>' )
                let at = |k: usize| significant.get(w + k).map(|&i| (i, &tokens[i].token));
                let mut k = 5;
                if !matches!(at(k), Some((_, Token::LParen))) {
                    return Err(Error::SyntaxError(
                        "with_max_staleness takes an interval in parentheses".into(),
                    ));
                }
                k += 1;
                if at(k).is_some_and(|(_, t)| is_keyword(t, Keyword::INTERVAL)) {
                    k += 1;
                }
                let Some((_, Token::SingleQuotedString(s))) = at(k) else {
                    return Err(Error::SyntaxError(
                        "with_max_staleness takes an interval such as '10s'".into(),
                    ));
                };
                let s = s.clone();
                match at(k + 1) {
                    Some((i, Token::RParen)) => last = i,
                    _ => {
                        return Err(Error::SyntaxError(
                            "with_max_staleness: expected \")\"".into(),
                        ))
                    }
                }
                AsOf::MaxStaleness(s)
            }
            t if is_keyword(t, Keyword::INTERVAL) => {
                let Some(&s_at) = significant.get(w + 5) else {
                    return Err(Error::SyntaxError("syntax error at end of input".into()));
                };
                last = s_at;
                match &tokens[s_at].token {
                    Token::SingleQuotedString(s) => AsOf::Literal(s.clone()),
                    other => {
                        return Err(Error::SyntaxError(format!(
                            "syntax error at or near \"{other}\""
                        )))
                    }
                }
            }
            other => {
                return Err(Error::SyntaxError(format!(
                "AS OF SYSTEM TIME: expected a string, a number or a parameter, found \"{other}\""
            )))
            }
        };
        tokens.drain(significant[w]..=last);
        return Ok(Some(value));
    }
    Ok(None)
}

/// A sqlparser error as PostgreSQL's syntax error message.
pub(crate) fn syntax_error(e: ParserError) -> Error {
    let text = match &e {
        ParserError::ParserError(s) | ParserError::TokenizerError(s) => s.clone(),
        ParserError::RecursionLimitExceeded => {
            return Error::SyntaxError("statement is too deeply nested".into())
        }
    };
    if let Some(pos) = text.find("found: ") {
        let rest = &text[pos + 7..];
        let token = match rest.find(" at Line:") {
            Some(end) => &rest[..end],
            None => rest,
        };
        if token == "EOF" {
            return Error::SyntaxError("syntax error at end of input".into());
        }
        return Error::SyntaxError(format!("syntax error at or near \"{token}\""));
    }
    Error::SyntaxError(format!("syntax error: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_and_empty_ones_vanish() {
        let p = parse_sql("SELECT 1; ; SELECT 'a;b';").unwrap();
        assert_eq!(p.len(), 2);
        assert!(parse_sql("  ;; ").unwrap().is_empty());
    }

    #[test]
    fn as_of_system_time_is_cut_out() {
        let p = parse_sql("SELECT * FROM t AS OF SYSTEM TIME '-5s' WHERE a = 1").unwrap();
        assert_eq!(p[0].as_of, Some(AsOf::Literal("-5s".into())));
        assert_eq!(p[0].stmt.to_string(), "SELECT * FROM t WHERE a = 1");
        let p = parse_sql("BEGIN AS OF SYSTEM TIME $1").unwrap();
        assert_eq!(p[0].as_of, Some(AsOf::Param(0)));
        let p = parse_sql("SET TRANSACTION AS OF SYSTEM TIME '2024-01-01 00:00:00'").unwrap();
        assert!(matches!(
            p[0].stmt,
            ast::Statement::Set(ast::Set::SetTransaction { .. })
        ));
        // Aliases named like the keywords are left alone.
        let p = parse_sql("SELECT 1 AS of").unwrap();
        assert_eq!(p[0].as_of, None);
    }

    #[test]
    fn syntax_errors_read_like_postgres() {
        let e = parse_sql("SELEC 1").unwrap_err();
        assert_eq!(e.to_string(), "syntax error at or near \"SELEC\"");
        let e = parse_sql("SELECT 1 +").unwrap_err();
        assert_eq!(e.to_string(), "syntax error at end of input");
        let e = parse_sql("SELECT 1; SELEC 2").unwrap_err();
        assert!(matches!(e, Error::SyntaxError(_)));
    }
}
