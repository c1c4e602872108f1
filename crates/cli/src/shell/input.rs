//! Cutting typed or scripted SQL into statements.
//!
//! Lines arrive one at a time (from the line editor or a file); a statement
//! ends at a `;` outside quotes, comments and parentheses, as in `psql`. The
//! splitter is a small lexer that carries its state from line to line, so a
//! statement may span lines and a line may hold several statements:
//!
//! - `'...'` strings (a doubled `''` is an escaped quote), and `E'...'`
//!   strings, where a backslash escapes the next character;
//! - `"..."` quoted identifiers;
//! - dollar quotes `$$...$$` and `$tag$...$tag$` (function bodies), but not
//!   parameters like `$1`;
//! - `-- line comments` and nested `/* block comments */`;
//! - parentheses: a `;` inside them does not end the statement.
//!
//! Whitespace and line comments before a statement are dropped (as `psql`
//! does), so a script's comment lines are not sent on their own. Each
//! statement remembers the line it started on, for error messages in
//! scripts. The splitter also tells the prompt what is open (`'`, `"`, `$`,
//! `(`, `*` for a comment, `-` for an unfinished statement).

/// A complete statement, without its terminating `;`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The SQL text.
    pub text: String,
    /// The 1-based line the statement started on.
    pub line: usize,
}

/// Where the lexer is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Plain SQL.
    Normal,
    /// Inside `'...'`; `escapes` for `E'...'` (backslash escapes).
    SingleQuote {
        /// Whether a backslash escapes the next character.
        escapes: bool,
    },
    /// Inside `"..."`.
    DoubleQuote,
    /// Inside `$tag$...$tag$`; the full delimiter, e.g. `$fn$`.
    Dollar(String),
    /// Inside `-- ...` until the end of the line.
    LineComment,
    /// Inside `/* ... */`, nested this deep.
    BlockComment(u32),
}

/// Accumulates lines and hands back complete statements.
#[derive(Clone, Debug)]
pub struct Splitter {
    /// The text of the unfinished statement.
    buf: String,
    /// The lexer state at the end of `buf`.
    state: State,
    /// Open parentheses in `buf`.
    parens: u32,
    /// Lines pushed so far.
    line_no: usize,
    /// The line the unfinished statement started on.
    start_line: usize,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// If `rest` starts a dollar quote (`$$` or `$tag$`), its delimiter.
fn dollar_delimiter(rest: &str) -> Option<&str> {
    let body = rest.strip_prefix('$')?;
    let end = body.find('$')?;
    let tag = &body[..end];
    let valid = tag
        .chars()
        .next()
        .is_none_or(|first| first.is_alphabetic() || first == '_')
        && tag.chars().all(|c| c.is_alphanumeric() || c == '_');
    valid.then(|| &rest[..end + 2])
}

impl Splitter {
    /// An empty splitter at line 1.
    pub fn new() -> Self {
        Self {
            buf: String::new(),
            state: State::Normal,
            parens: 0,
            line_no: 0,
            start_line: 1,
        }
    }

    /// Whether nothing but whitespace is pending.
    pub fn is_blank(&self) -> bool {
        self.buf.trim().is_empty() && self.state == State::Normal
    }

    /// Whether the lexer is in plain SQL (not in a string, quoted identifier
    /// or comment), where a line starting with `\` is a meta command.
    pub fn at_plain_sql(&self) -> bool {
        self.state == State::Normal
    }

    /// The unfinished statement's text so far.
    pub fn pending_text(&self) -> &str {
        &self.buf
    }

    /// Forgets the unfinished statement.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.state = State::Normal;
        self.parens = 0;
        self.start_line = self.line_no + 1;
    }

    /// Counts a line that was not SQL (a meta command), to keep line
    /// numbers right.
    pub fn skip_line(&mut self) {
        self.line_no += 1;
        if self.is_blank() {
            self.start_line = self.line_no + 1;
        }
    }

    /// The character `psql` shows in its continuation prompt for what is
    /// open: `=` when nothing is pending.
    pub fn prompt_marker(&self) -> char {
        match self.state {
            State::SingleQuote { .. } => '\'',
            State::DoubleQuote => '"',
            State::Dollar(_) => '$',
            State::BlockComment(_) => '*',
            State::Normal | State::LineComment if self.parens > 0 => '(',
            State::Normal | State::LineComment if self.is_blank() => '=',
            State::Normal | State::LineComment => '-',
        }
    }

    /// Feeds one line (without its newline) and returns the statements it
    /// completed.
    pub fn push_line(&mut self, line: &str) -> Vec<Statement> {
        self.line_no += 1;
        let mut done = Vec::new();
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            let len = c.len_utf8();
            match &self.state {
                State::Normal => {
                    if self.buf.trim().is_empty() {
                        // Nothing but whitespace yet: drop leading blanks
                        // and line comments, and note where it starts.
                        if c.is_whitespace() {
                            self.buf.clear();
                            rest = &rest[len..];
                            continue;
                        }
                        if rest.starts_with("--") {
                            self.buf.clear();
                            break;
                        }
                        if self.buf.is_empty() {
                            self.start_line = self.line_no;
                        }
                    }
                    if c == ';' && self.parens == 0 {
                        let text = std::mem::take(&mut self.buf);
                        let text = text.trim_end();
                        if !text.is_empty() {
                            done.push(Statement {
                                text: text.to_string(),
                                line: self.start_line,
                            });
                        }
                        self.start_line = self.line_no;
                        rest = &rest[len..];
                        continue;
                    }
                    let mut consumed = len;
                    let previous = self.buf.chars().next_back();
                    match c {
                        '\'' => {
                            let escapes = matches!(previous, Some('E' | 'e'))
                                && !self.buf[..self.buf.len() - 1]
                                    .chars()
                                    .next_back()
                                    .is_some_and(is_ident_char);
                            self.state = State::SingleQuote { escapes };
                        }
                        '"' => self.state = State::DoubleQuote,
                        '-' if rest.starts_with("--") => {
                            self.state = State::LineComment;
                            consumed = 2;
                        }
                        '/' if rest.starts_with("/*") => {
                            self.state = State::BlockComment(1);
                            consumed = 2;
                        }
                        '(' => self.parens += 1,
                        ')' => self.parens = self.parens.saturating_sub(1),
                        '$' if !previous.is_some_and(is_ident_char) => {
                            if let Some(delimiter) = dollar_delimiter(rest) {
                                consumed = delimiter.len();
                                self.state = State::Dollar(delimiter.to_string());
                            }
                        }
                        _ => {}
                    }
                    self.buf.push_str(&rest[..consumed]);
                    rest = &rest[consumed..];
                }
                State::SingleQuote { escapes } => {
                    let mut consumed = len;
                    if c == '\\' && *escapes {
                        consumed += rest[len..].chars().next().map_or(0, char::len_utf8);
                    } else if c == '\'' {
                        self.state = State::Normal;
                    }
                    self.buf.push_str(&rest[..consumed]);
                    rest = &rest[consumed..];
                }
                State::DoubleQuote => {
                    if c == '"' {
                        self.state = State::Normal;
                    }
                    self.buf.push(c);
                    rest = &rest[len..];
                }
                State::Dollar(delimiter) => match rest.find(delimiter.as_str()) {
                    Some(at) => {
                        let end = at + delimiter.len();
                        self.buf.push_str(&rest[..end]);
                        rest = &rest[end..];
                        self.state = State::Normal;
                    }
                    None => {
                        self.buf.push_str(rest);
                        rest = "";
                    }
                },
                State::LineComment => {
                    self.buf.push_str(rest);
                    rest = "";
                }
                State::BlockComment(depth) => {
                    let depth = *depth;
                    if rest.starts_with("*/") {
                        self.state = if depth == 1 {
                            State::Normal
                        } else {
                            State::BlockComment(depth - 1)
                        };
                        self.buf.push_str("*/");
                        rest = &rest[2..];
                    } else if rest.starts_with("/*") {
                        self.state = State::BlockComment(depth + 1);
                        self.buf.push_str("/*");
                        rest = &rest[2..];
                    } else {
                        self.buf.push(c);
                        rest = &rest[len..];
                    }
                }
            }
        }
        if self.state == State::LineComment {
            self.state = State::Normal;
        }
        if !self.buf.is_empty() {
            self.buf.push('\n');
        }
        done
    }

    /// At the end of input: the unfinished statement, if anything but
    /// whitespace and comments is pending (`psql` runs it too).
    pub fn finish(&mut self) -> Option<Statement> {
        let text = std::mem::take(&mut self.buf);
        let line = self.start_line;
        self.reset();
        let text = text.trim_end();
        (!text.is_empty()).then(|| Statement {
            text: text.to_string(),
            line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &str) -> Vec<(usize, String)> {
        let mut splitter = Splitter::new();
        let mut out = Vec::new();
        for line in input.lines() {
            out.extend(splitter.push_line(line));
        }
        out.extend(splitter.finish());
        out.into_iter().map(|s| (s.line, s.text)).collect()
    }

    fn texts(input: &str) -> Vec<String> {
        split(input).into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn statements_end_at_semicolons_and_may_span_lines() {
        assert_eq!(
            split("select 1; select 2;\nselect\n  3\n;\n\ninsert into t values (1);"),
            vec![
                (1, "select 1".to_string()),
                (1, "select 2".to_string()),
                (2, "select\n  3".to_string()),
                (6, "insert into t values (1)".to_string()),
            ]
        );
    }

    #[test]
    fn semicolons_in_quotes_comments_and_parentheses_do_not_split() {
        assert_eq!(
            texts("select 'a;b', \"c;d\" /* e; /* nested; */ f; */ ;"),
            vec!["select 'a;b', \"c;d\" /* e; /* nested; */ f; */"]
        );
        assert_eq!(texts("select 'it''s; ok';"), vec!["select 'it''s; ok'"]);
        assert_eq!(
            texts("select E'back\\'slash;';select 2;"),
            vec!["select E'back\\'slash;'", "select 2"]
        );
        // Without E, a backslash is an ordinary character.
        assert_eq!(
            texts("select '\\';select 2;"),
            vec!["select '\\'", "select 2"]
        );
        assert_eq!(
            texts("select 1 -- a comment; with a semicolon\n, 2;"),
            vec!["select 1 -- a comment; with a semicolon\n, 2"]
        );
        assert_eq!(
            texts("create rule r as on insert to t do (insert into a values (1); insert into b values (2));"),
            vec!["create rule r as on insert to t do (insert into a values (1); insert into b values (2))"]
        );
    }

    #[test]
    fn dollar_quotes_hold_bodies_but_parameters_are_not_quotes() {
        let body = "create function f() returns int as $$\n  select 1;\n$$ language sql;";
        assert_eq!(texts(body), vec![body.trim_end_matches(';')]);
        let tagged = "do $fn$ begin raise notice '$$;'; end $fn$;";
        assert_eq!(texts(tagged), vec![tagged.trim_end_matches(';')]);
        assert_eq!(
            texts("select $1 + $2; select a$b$ from t;"),
            vec!["select $1 + $2", "select a$b$ from t"]
        );
    }

    #[test]
    fn leading_comments_and_blank_statements_are_dropped() {
        assert_eq!(
            split("-- setup\n\n  -- more\nselect 1;;\n;\n-- trailing comment"),
            vec![(4, "select 1".to_string())]
        );
    }

    #[test]
    fn unfinished_input_is_run_at_the_end() {
        assert_eq!(texts("select 1;\nselect 2"), vec!["select 1", "select 2"]);
        let mut splitter = Splitter::new();
        assert!(splitter.push_line("select 'open").is_empty());
        assert_eq!(splitter.finish().unwrap().text, "select 'open");
    }

    #[test]
    fn the_prompt_marker_says_what_is_open() {
        let mut s = Splitter::new();
        assert_eq!(s.prompt_marker(), '=');
        s.push_line("select (1,");
        assert_eq!(s.prompt_marker(), '(');
        s.push_line("2)");
        assert_eq!(s.prompt_marker(), '-');
        s.push_line("|| 'abc");
        assert_eq!(s.prompt_marker(), '\'');
        assert!(!s.at_plain_sql());
        s.push_line("' || \"x");
        assert_eq!(s.prompt_marker(), '"');
        s.push_line("\" /* ");
        assert_eq!(s.prompt_marker(), '*');
        s.push_line("*/ || $$");
        assert_eq!(s.prompt_marker(), '$');
        assert_eq!(s.push_line("$$;").len(), 1);
        assert_eq!(s.prompt_marker(), '=');
        s.push_line("   ");
        assert!(s.is_blank());
        s.push_line("select");
        s.reset();
        assert!(s.is_blank());
    }

    #[test]
    fn meta_command_lines_count_for_line_numbers() {
        let mut s = Splitter::new();
        s.push_line("select 1;");
        s.skip_line();
        let done = s.push_line("select 2;");
        assert_eq!(done[0].line, 3);
    }
}
