//! Backslash meta commands: what the shell does itself instead of sending
//! SQL. A line is a meta command when it starts with `\` outside any quote
//! or comment; the command is the letters after the backslash and the rest
//! of the line are its arguments. The words `help`, `quit` and `exit` alone
//! on a line also work, as in `psql`.

/// A parsed meta command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaCommand {
    /// `\q`: leave the shell.
    Quit,
    /// `\?`: list the meta commands.
    Help,
    /// `\timing [on|off]`: report how long each statement took.
    Timing(Option<bool>),
    /// `\d` (relations) or `\dt [PATTERN]` (tables, optionally matching a
    /// pattern with `*` and `?` wildcards).
    List {
        /// `\dt`: tables only.
        tables_only: bool,
        /// Only names matching this.
        pattern: Option<String>,
    },
    /// `\d PATTERN`: describe the matching tables: columns, types,
    /// nullability, defaults and indexes.
    Describe(String),
    /// `\r`: forget the unfinished statement.
    Reset,
    /// `\p`: show the unfinished statement.
    Print,
    /// `\conninfo`: say where the shell is connected.
    ConnInfo,
    /// `\i FILE`: run the statements and meta commands in a file.
    Include(String),
    /// Anything else, or a command missing its argument: an error message.
    Invalid(String),
}

/// Parses `line` if it is a meta command (or `help`/`quit`/`exit`).
pub fn parse(line: &str) -> Option<MetaCommand> {
    let line = line.trim();
    match line.trim_end_matches(';') {
        "help" => return Some(MetaCommand::Help),
        "quit" | "exit" => return Some(MetaCommand::Quit),
        _ => {}
    }
    let body = line.strip_prefix('\\')?;
    let name_len = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
    let (name, args) = body.split_at(name_len);
    let args = args.trim();
    let arg = (!args.is_empty()).then(|| args.to_string());
    // `\d+` and `\dt+` ask for more detail; the shell has only one level.
    let command = match name.trim_end_matches('+') {
        "q" => MetaCommand::Quit,
        "?" | "h" => MetaCommand::Help,
        "timing" => match args.to_ascii_lowercase().as_str() {
            "" => MetaCommand::Timing(None),
            "on" => MetaCommand::Timing(Some(true)),
            "off" => MetaCommand::Timing(Some(false)),
            other => MetaCommand::Invalid(format!(
                "unrecognized value \"{other}\" for \"\\timing\": Boolean expected"
            )),
        },
        "d" => match arg {
            Some(pattern) => MetaCommand::Describe(pattern),
            None => MetaCommand::List {
                tables_only: false,
                pattern: None,
            },
        },
        "dt" => MetaCommand::List {
            tables_only: true,
            pattern: arg,
        },
        "r" => MetaCommand::Reset,
        "p" => MetaCommand::Print,
        "conninfo" => MetaCommand::ConnInfo,
        "i" | "ir" => match arg {
            Some(file) => MetaCommand::Include(file),
            None => MetaCommand::Invalid("\\i: missing required argument".to_string()),
        },
        _ => MetaCommand::Invalid(format!("invalid command \\{name}\nTry \\? for help.")),
    };
    Some(command)
}

/// The text `\?` prints.
pub const HELP: &str = r#"General
  \q                     quit meridian sql (also: quit, exit, Ctrl-D)
  \?                     show this help
  \timing [on|off]       toggle timing of statements
  \conninfo              show where the shell is connected

Informational
  \d                     list tables (and other relations)
  \dt [PATTERN]          list tables (PATTERN may use * and ?)
  \d PATTERN             describe the matching tables: columns, types,
                         nullability, defaults and indexes

Query buffer
  \p                     show the unfinished statement
  \r                     reset (clear) the unfinished statement
  \i FILE                execute statements and commands from FILE

Statements end with ";" and may span lines. Ctrl-C clears the unfinished
statement, or cancels the running one.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_commands_parse() {
        assert_eq!(parse("\\q"), Some(MetaCommand::Quit));
        assert_eq!(parse("  quit  "), Some(MetaCommand::Quit));
        assert_eq!(parse("exit;"), Some(MetaCommand::Quit));
        assert_eq!(parse("\\?"), Some(MetaCommand::Help));
        assert_eq!(parse("help"), Some(MetaCommand::Help));
        assert_eq!(parse("\\timing"), Some(MetaCommand::Timing(None)));
        assert_eq!(parse("\\timing ON"), Some(MetaCommand::Timing(Some(true))));
        assert_eq!(
            parse("\\timing off"),
            Some(MetaCommand::Timing(Some(false)))
        );
        assert!(matches!(
            parse("\\timing maybe"),
            Some(MetaCommand::Invalid(_))
        ));
        let list = |tables_only, pattern: Option<&str>| {
            Some(MetaCommand::List {
                tables_only,
                pattern: pattern.map(str::to_string),
            })
        };
        assert_eq!(parse("\\d"), list(false, None));
        assert_eq!(parse("\\d+"), list(false, None));
        assert_eq!(parse("\\dt"), list(true, None));
        assert_eq!(parse("\\dt acc*"), list(true, Some("acc*")));
        assert_eq!(
            parse("\\d ord*"),
            Some(MetaCommand::Describe("ord*".into()))
        );
        assert_eq!(
            parse("\\d  accounts "),
            Some(MetaCommand::Describe("accounts".into()))
        );
        assert_eq!(parse("\\r"), Some(MetaCommand::Reset));
        assert_eq!(parse("\\p"), Some(MetaCommand::Print));
        assert_eq!(parse("\\conninfo"), Some(MetaCommand::ConnInfo));
        assert_eq!(
            parse("\\i setup.sql"),
            Some(MetaCommand::Include("setup.sql".into()))
        );
        assert!(matches!(parse("\\i"), Some(MetaCommand::Invalid(_))));
        assert_eq!(
            parse("\\frobnicate"),
            Some(MetaCommand::Invalid(
                "invalid command \\frobnicate\nTry \\? for help.".into()
            ))
        );
        assert_eq!(parse("select 1;"), None);
        assert_eq!(parse("helper"), None);
    }
}
