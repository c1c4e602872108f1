//! The regular expressions psql writes for name patterns.
//!
//! `\d us*` becomes `c.relname OPERATOR(pg_catalog.~) '^(us.*)$'`: psql turns
//! its shell-style pattern into an anchored POSIX regex (`*` to `.*`, `?` to
//! `.`, other special characters backslash-escaped, `|` kept as
//! alternation). This module matches names against that subset: literals,
//! `\`-escapes, `.`, bracket classes, the quantifiers `*`, `+`, `?`,
//! alternation and groups, anchored at both ends. Anything fancier fails to
//! compile, and the catalog query then finds nothing rather than guessing.

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq)]
enum Atom {
    /// A literal character.
    Char(char),
    /// `.`: any character.
    Any,
    /// `[...]`: a set of characters and ranges, maybe negated.
    Class {
        /// Whether it is `[^...]`.
        negated: bool,
        /// Inclusive ranges (a single character is a range of one).
        ranges: Vec<(char, char)>,
    },
    /// `( ... | ... )`.
    Group(Vec<Vec<Piece>>),
}

/// An atom and how often it may repeat.
#[derive(Clone, Debug, PartialEq)]
struct Piece {
    /// What to match.
    atom: Atom,
    /// Fewest repetitions.
    min: usize,
    /// Most repetitions (`usize::MAX` for unbounded).
    max: usize,
}

/// A compiled, fully anchored pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pattern {
    /// The alternatives of the whole pattern.
    alternatives: Vec<Vec<Piece>>,
}

impl Pattern {
    /// Compiles psql's regex (with or without `^`/`$`; matching is always
    /// anchored). `None` if it uses syntax outside the supported subset.
    pub fn compile(regex: &str) -> Option<Pattern> {
        let mut chars: Vec<char> = regex.chars().collect();
        if chars.first() == Some(&'^') {
            chars.remove(0);
        }
        if chars.last() == Some(&'$') && !(chars.len() >= 2 && chars[chars.len() - 2] == '\\') {
            chars.pop();
        }
        let mut pos = 0;
        let alternatives = parse_alternatives(&chars, &mut pos)?;
        (pos == chars.len()).then_some(Pattern { alternatives })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let chars: Vec<char> = name.chars().collect();
        self.alternatives
            .iter()
            .any(|alt| match_seq(alt, &chars, 0, &mut |end| end == chars.len()))
    }
}

/// Parses `a|b|...` up to a closing `)` or the end.
fn parse_alternatives(chars: &[char], pos: &mut usize) -> Option<Vec<Vec<Piece>>> {
    let mut alternatives = vec![Vec::new()];
    while *pos < chars.len() {
        let c = chars[*pos];
        let atom = match c {
            ')' => break,
            '|' => {
                *pos += 1;
                alternatives.push(Vec::new());
                continue;
            }
            '(' => {
                *pos += 1;
                let inner = parse_alternatives(chars, pos)?;
                if chars.get(*pos) != Some(&')') {
                    return None;
                }
                *pos += 1;
                Atom::Group(inner)
            }
            '.' => {
                *pos += 1;
                Atom::Any
            }
            '\\' => {
                let escaped = *chars.get(*pos + 1)?;
                *pos += 2;
                Atom::Char(escaped)
            }
            '[' => parse_class(chars, pos)?,
            '*' | '+' | '?' | '{' | '^' | '$' => return None,
            c => {
                *pos += 1;
                Atom::Char(c)
            }
        };
        let (min, max) = match chars.get(*pos) {
            Some('*') => (0, usize::MAX),
            Some('+') => (1, usize::MAX),
            Some('?') => (0, 1),
            _ => (1, 1),
        };
        if (min, max) != (1, 1) {
            *pos += 1;
        }
        alternatives
            .last_mut()
            .expect("at least one alternative")
            .push(Piece { atom, min, max });
    }
    Some(alternatives)
}

/// Parses a bracket class starting at `[`.
fn parse_class(chars: &[char], pos: &mut usize) -> Option<Atom> {
    *pos += 1;
    let negated = chars.get(*pos) == Some(&'^');
    if negated {
        *pos += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(*pos)?;
        if c == ']' && !first {
            *pos += 1;
            break;
        }
        first = false;
        if chars.get(*pos + 1) == Some(&'-') && chars.get(*pos + 2).is_some_and(|&e| e != ']') {
            ranges.push((c, chars[*pos + 2]));
            *pos += 3;
        } else {
            ranges.push((c, c));
            *pos += 1;
        }
    }
    Some(Atom::Class { negated, ranges })
}

/// Whether `atom` matches at `at`; calls `next` with each end position.
fn match_atom(atom: &Atom, s: &[char], at: usize, next: &mut dyn FnMut(usize) -> bool) -> bool {
    match atom {
        Atom::Char(c) => s.get(at) == Some(c) && next(at + 1),
        Atom::Any => at < s.len() && next(at + 1),
        Atom::Class { negated, ranges } => match s.get(at) {
            Some(&c) => {
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated && next(at + 1)
            }
            None => false,
        },
        Atom::Group(alternatives) => alternatives.iter().any(|alt| match_seq(alt, s, at, next)),
    }
}

/// Whether the sequence `seq` matches from `at`, continuing with `next`.
fn match_seq(seq: &[Piece], s: &[char], at: usize, next: &mut dyn FnMut(usize) -> bool) -> bool {
    let Some((piece, rest)) = seq.split_first() else {
        return next(at);
    };
    match_repeat(piece, 0, rest, s, at, next)
}

/// Matches `piece` having already matched it `count` times (greedy).
fn match_repeat(
    piece: &Piece,
    count: usize,
    rest: &[Piece],
    s: &[char],
    at: usize,
    next: &mut dyn FnMut(usize) -> bool,
) -> bool {
    if count < piece.max
        && match_atom(&piece.atom, s, at, &mut |end| {
            // An empty match makes no progress: only take it while the
            // minimum count is not reached yet.
            (end > at || count < piece.min) && match_repeat(piece, count + 1, rest, s, end, next)
        })
    {
        return true;
    }
    count >= piece.min && match_seq(rest, s, at, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(regex: &str, name: &str) -> bool {
        Pattern::compile(regex).unwrap().matches(name)
    }

    #[test]
    fn psql_patterns() {
        assert!(m("^(users)$", "users"));
        assert!(!m("^(users)$", "users2"));
        assert!(!m("^(users)$", "user"));
        assert!(m("^(us.*)$", "users"));
        assert!(m("^(us.*)$", "us"));
        assert!(m("^(u.ers)$", "users"));
        assert!(m("^(a|b)$", "b"));
        assert!(m("^(my\\.t)$", "my.t"));
        assert!(!m("^(my\\.t)$", "myxt"));
        assert!(m("^([a-c]x+)$", "bxxx"));
        assert!(m("^(t_?1)$", "t1") && m("^(t_?1)$", "t_1"));
        assert!(m("^(.*)$", ""));
    }

    #[test]
    fn unsupported_syntax_does_not_compile() {
        assert!(Pattern::compile("^(a{2})$").is_none());
        assert!(Pattern::compile("^((a)$").is_none());
    }
}
