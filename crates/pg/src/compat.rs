//! Statements the wire layer answers itself, for client compatibility.
//!
//! Drivers and shells send a handful of statements that are about the
//! *connection*, not the data, and that a PostgreSQL server must accept for
//! them to work at all. They are intercepted here, before the SQL layer sees
//! them:
//!
//! - `SET` / `RESET` of client-facing settings whose only value Meridian
//!   supports is the one clients ask for (`extra_float_digits`,
//!   `application_name`, `client_encoding` UTF8, `DateStyle` ISO, `TimeZone`
//!   UTC, `search_path`, ...). JDBC sends two of these on every connection.
//!   The value is remembered for `SHOW`; `application_name` is echoed with a
//!   `ParameterStatus`, as PostgreSQL does. A `SET` of anything else, or of
//!   a value Meridian cannot honour (another time zone), goes to the SQL
//!   layer.
//! - `SHOW` of those settings and of the server's reported parameters
//!   (`server_version`, `transaction_isolation`, ...).
//! - `DEALLOCATE [PREPARE] name | ALL` and `DISCARD ALL`: prepared statements
//!   live in the wire layer, so it drops them (psycopg sends `DEALLOCATE ALL`
//!   after every rollback).
//! - `SELECT` of session functions without a `FROM`: `version()`,
//!   `current_database()`, `current_schema()`, `current_user`,
//!   `pg_backend_pid()`, `current_setting('...')`.
//! - Catalog queries, recognised and answered by [`crate::catalog`].
//!
//! Recognition is cheap for ordinary statements: a look at the first keyword,
//! and for a `SELECT` a case-insensitive search for `pg_`, `version`,
//! `current_`, `user` before anything is allocated.

use meridian_sql::Value;

use crate::catalog::CatalogQuery;
use crate::sqltext::{first_keyword, normalize, split_select};
use crate::values::{WireColumn, WireType};

/// A statement answered by the wire layer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Intercept {
    /// `SET name = value` (or `RESET name`: `value` is `None`).
    Set {
        /// The canonical setting name.
        name: &'static str,
        /// The value to store, normalised; `None` resets to the default.
        value: Option<String>,
    },
    /// `SHOW name`.
    Show {
        /// The canonical setting name.
        name: &'static str,
    },
    /// `DEALLOCATE name` (`None`: `DEALLOCATE ALL`).
    Deallocate(Option<String>),
    /// `DISCARD ALL`.
    DiscardAll,
    /// `SELECT f(), g()` of session functions.
    Functions(Vec<(String, Function)>),
    /// A catalog query.
    Catalog(Box<CatalogQuery>),
}

/// A session function answered by the wire layer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Function {
    /// `version()`.
    Version,
    /// `current_database()`.
    CurrentDatabase,
    /// `current_schema()`.
    CurrentSchema,
    /// `current_user`, `session_user`, `user`.
    CurrentUser,
    /// `pg_backend_pid()`.
    BackendPid,
    /// `current_setting('name')`.
    Setting(&'static str),
}

/// A setting: canonical name, whether a client may `SET` it (and which
/// values are fine), and whether changes are reported to the client.
struct SettingDef {
    /// The canonical name (as `SHOW` labels it).
    name: &'static str,
    /// Checks and normalises a value given to `SET`, returning `None` if
    /// Meridian cannot honour it (then the statement goes to the SQL layer);
    /// `None` for a read-only setting.
    accept: Option<fn(&str) -> Option<String>>,
}

/// Any value.
fn any(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// The settings the wire layer knows.
const SETTINGS: &[SettingDef] = &[
    SettingDef {
        name: "application_name",
        accept: Some(any),
    },
    SettingDef {
        name: "client_encoding",
        accept: Some(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "utf8" | "utf-8" | "unicode"
            )
            .then(|| "UTF8".to_owned())
        }),
    },
    SettingDef {
        name: "DateStyle",
        accept: Some(|v| {
            v.to_ascii_lowercase()
                .contains("iso")
                .then(|| "ISO, MDY".to_owned())
        }),
    },
    SettingDef {
        name: "TimeZone",
        accept: Some(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "utc"
                    | "etc/utc"
                    | "gmt"
                    | "etc/gmt"
                    | "z"
                    | "zulu"
                    | "0"
                    | "+00"
                    | "+00:00"
                    | "uct"
            )
            .then(|| "UTC".to_owned())
        }),
    },
    SettingDef {
        name: "IntervalStyle",
        accept: Some(|v| {
            v.eq_ignore_ascii_case("postgres")
                .then(|| "postgres".to_owned())
        }),
    },
    SettingDef {
        name: "extra_float_digits",
        accept: Some(|v| {
            v.parse::<i32>()
                .ok()
                .filter(|d| (-15..=3).contains(d))
                .map(|d| d.to_string())
        }),
    },
    SettingDef {
        name: "standard_conforming_strings",
        accept: Some(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "on" | "true" | "1").then(|| "on".to_owned())
        }),
    },
    SettingDef {
        name: "bytea_output",
        accept: Some(|v| v.eq_ignore_ascii_case("hex").then(|| "hex".to_owned())),
    },
    SettingDef {
        name: "client_min_messages",
        accept: Some(any),
    },
    SettingDef {
        name: "search_path",
        accept: Some(any),
    },
    SettingDef {
        name: "lc_messages",
        accept: Some(any),
    },
    SettingDef {
        name: "lc_monetary",
        accept: Some(any),
    },
    SettingDef {
        name: "lc_numeric",
        accept: Some(any),
    },
    SettingDef {
        name: "lc_time",
        accept: Some(any),
    },
    SettingDef {
        name: "server_version",
        accept: None,
    },
    SettingDef {
        name: "server_version_num",
        accept: None,
    },
    SettingDef {
        name: "server_encoding",
        accept: None,
    },
    SettingDef {
        name: "integer_datetimes",
        accept: None,
    },
    SettingDef {
        name: "is_superuser",
        accept: None,
    },
    SettingDef {
        name: "session_authorization",
        accept: None,
    },
    SettingDef {
        name: "transaction_isolation",
        accept: None,
    },
    SettingDef {
        name: "default_transaction_isolation",
        accept: None,
    },
    SettingDef {
        name: "default_transaction_read_only",
        accept: None,
    },
    SettingDef {
        name: "in_hot_standby",
        accept: None,
    },
    SettingDef {
        name: "max_identifier_length",
        accept: None,
    },
];

/// The parameters reported to the client at startup (and on change), as
/// PostgreSQL 15 reports them.
pub(crate) const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "default_transaction_read_only",
    "in_hot_standby",
    "integer_datetimes",
    "IntervalStyle",
    "is_superuser",
    "server_encoding",
    "server_version",
    "session_authorization",
    "standard_conforming_strings",
    "TimeZone",
];

/// The setting called `name` (case-insensitive).
fn setting(name: &str) -> Option<&'static SettingDef> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// A connection's settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Current values, by canonical name.
    values: Vec<(&'static str, String)>,
    /// The defaults `RESET` returns to.
    defaults: Vec<(&'static str, String)>,
}

impl Settings {
    /// The settings of a new connection.
    pub fn new(server_version: &str, user: &str, application_name: &str) -> Self {
        let version_num = {
            let mut parts = server_version
                .split(|c: char| !c.is_ascii_digit())
                .filter(|p| !p.is_empty())
                .map(|p| p.parse::<u32>().unwrap_or(0));
            let major = parts.next().unwrap_or(0);
            let minor = parts.next().unwrap_or(0);
            (major * 10_000 + minor).to_string()
        };
        let defaults: Vec<(&'static str, String)> = vec![
            ("application_name", application_name.to_owned()),
            ("client_encoding", "UTF8".into()),
            ("DateStyle", "ISO, MDY".into()),
            ("TimeZone", "UTC".into()),
            ("IntervalStyle", "postgres".into()),
            ("extra_float_digits", "1".into()),
            ("standard_conforming_strings", "on".into()),
            ("bytea_output", "hex".into()),
            ("client_min_messages", "notice".into()),
            ("search_path", "\"$user\", public".into()),
            ("lc_messages", "C".into()),
            ("lc_monetary", "C".into()),
            ("lc_numeric", "C".into()),
            ("lc_time", "C".into()),
            ("server_version", server_version.to_owned()),
            ("server_version_num", version_num),
            ("server_encoding", "UTF8".into()),
            ("integer_datetimes", "on".into()),
            ("is_superuser", "on".into()),
            ("session_authorization", user.to_owned()),
            ("transaction_isolation", "serializable".into()),
            ("default_transaction_isolation", "serializable".into()),
            ("default_transaction_read_only", "off".into()),
            ("in_hot_standby", "off".into()),
            ("max_identifier_length", "63".into()),
        ];
        Self {
            values: defaults.clone(),
            defaults,
        }
    }

    /// The value of the setting `name` (canonical).
    pub fn get(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Sets (or with `None`, resets) a setting; returns the new value.
    pub fn set(&mut self, name: &'static str, value: Option<String>) -> String {
        let value = value.unwrap_or_else(|| {
            self.defaults
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        });
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => self.values.push((name, value.clone())),
        }
        value
    }
}

/// Recognises a statement the wire layer answers itself.
pub(crate) fn intercept(stmt: &str) -> Option<Intercept> {
    let keyword = first_keyword(stmt);
    match keyword.as_str() {
        "SET" | "RESET" => parse_set(stmt),
        "SHOW" => parse_show(stmt),
        "DEALLOCATE" => parse_deallocate(stmt),
        "DISCARD" => {
            let words = words(&normalize(stmt));
            (words.len() == 2 && words[1].eq_ignore_ascii_case("all"))
                .then_some(Intercept::DiscardAll)
        }
        "SELECT" => {
            if !["pg_", "version", "current_", "user"]
                .iter()
                .any(|needle| contains_ignore_case(stmt, needle))
            {
                return None;
            }
            if let Some(functions) = parse_functions(stmt) {
                return Some(Intercept::Functions(functions));
            }
            CatalogQuery::recognize(stmt).map(|q| Intercept::Catalog(Box::new(q)))
        }
        _ => None,
    }
}

impl Intercept {
    /// The parameter types a client must send.
    pub fn param_types(&self) -> Vec<WireType> {
        match self {
            Intercept::Catalog(q) => q.param_types().to_vec(),
            _ => Vec::new(),
        }
    }

    /// The result columns, `None` for a statement that returns no rows.
    pub fn columns(&self) -> Option<Vec<WireColumn>> {
        match self {
            Intercept::Show { name } => Some(vec![WireColumn::new(name, WireType::text())]),
            Intercept::Functions(functions) => Some(
                functions
                    .iter()
                    .map(|(label, f)| {
                        let ty = match f {
                            Function::BackendPid => WireType::of(&meridian_sql::DataType::Int4),
                            Function::CurrentDatabase
                            | Function::CurrentSchema
                            | Function::CurrentUser => WireType::name(),
                            _ => WireType::text(),
                        };
                        WireColumn::new(label, ty)
                    })
                    .collect(),
            ),
            Intercept::Catalog(q) => Some(q.columns()),
            Intercept::Set { .. } | Intercept::Deallocate(_) | Intercept::DiscardAll => None,
        }
    }
}

/// The value of a session function.
pub(crate) fn function_value(
    f: &Function,
    settings: &Settings,
    database: &str,
    user: &str,
    pid: i32,
) -> Value {
    match f {
        Function::Version => Value::Text(format!(
            "PostgreSQL {} (Meridian {}) on {}-unknown-linux, compiled by rustc, 64-bit",
            settings.get("server_version"),
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
        )),
        Function::CurrentDatabase => Value::Text(database.to_owned()),
        Function::CurrentSchema => Value::Text("public".into()),
        Function::CurrentUser => Value::Text(user.to_owned()),
        Function::BackendPid => Value::Int(pid as i64),
        Function::Setting(name) => Value::Text(settings.get(name).to_owned()),
    }
}

/// Whether `haystack` contains the lowercase ASCII `needle`, ignoring case.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Splits normalized SQL into words and punctuation (`=`, `,`), keeping
/// quoted strings whole.
fn words(n: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = n.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '=' | ',' => {
                out.push(c.to_string());
                chars.next();
            }
            '\'' | '"' => {
                let quote = c;
                let mut word = String::from(quote);
                chars.next();
                while let Some(c) = chars.next() {
                    word.push(c);
                    if c == quote {
                        if chars.peek() == Some(&quote) {
                            word.push(quote);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push(word);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ' ' || c == '=' || c == ',' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
    out
}

/// A value word: quotes removed (`''` unescaped), else as is.
fn unquote(word: &str) -> String {
    if word.len() >= 2 && word.starts_with('\'') && word.ends_with('\'') {
        word[1..word.len() - 1].replace("''", "'")
    } else if word.len() >= 2 && word.starts_with('"') && word.ends_with('"') {
        word[1..word.len() - 1].replace("\"\"", "\"")
    } else {
        word.to_owned()
    }
}

/// `SET [SESSION | LOCAL] name {TO | =} value[, ...]`, `SET NAMES v`,
/// `SET TIME ZONE v`, `RESET name`.
fn parse_set(stmt: &str) -> Option<Intercept> {
    let words = words(&normalize(stmt));
    let mut rest = &words[1..];
    if words[0].eq_ignore_ascii_case("reset") {
        let [name] = rest else { return None };
        let def = setting(name)?;
        def.accept?;
        return Some(Intercept::Set {
            name: def.name,
            value: None,
        });
    }
    if let Some(first) = rest.first() {
        if first.eq_ignore_ascii_case("session") || first.eq_ignore_ascii_case("local") {
            rest = &rest[1..];
        }
    }
    let (name, values): (&str, &[String]) = match rest {
        [w1, w2, values @ ..]
            if w1.eq_ignore_ascii_case("time") && w2.eq_ignore_ascii_case("zone") =>
        {
            ("TimeZone", values)
        }
        [w1, values @ ..] if w1.eq_ignore_ascii_case("names") => ("client_encoding", values),
        [name, op, values @ ..] if op == "=" || op.eq_ignore_ascii_case("to") => {
            (name.as_str(), values)
        }
        _ => return None,
    };
    if values.is_empty() {
        return None;
    }
    let def = setting(name)?;
    def.accept?;
    if values.len() == 1 && values[0].eq_ignore_ascii_case("default") {
        return Some(Intercept::Set {
            name: def.name,
            value: None,
        });
    }
    let value = values
        .iter()
        .filter(|w| *w != ",")
        .map(|w| unquote(w))
        .collect::<Vec<_>>()
        .join(", ");
    let value = (def.accept?)(&value)?;
    Some(Intercept::Set {
        name: def.name,
        value: Some(value),
    })
}

/// `SHOW name`, `SHOW TRANSACTION ISOLATION LEVEL`, `SHOW TIME ZONE`.
fn parse_show(stmt: &str) -> Option<Intercept> {
    let words = words(&normalize(stmt));
    let name = match &words[1..] {
        [name] => name.as_str(),
        [a, b, c]
            if a.eq_ignore_ascii_case("transaction")
                && b.eq_ignore_ascii_case("isolation")
                && c.eq_ignore_ascii_case("level") =>
        {
            "transaction_isolation"
        }
        [a, b] if a.eq_ignore_ascii_case("time") && b.eq_ignore_ascii_case("zone") => "TimeZone",
        _ => return None,
    };
    let def = setting(&unquote(name))?;
    Some(Intercept::Show { name: def.name })
}

/// `DEALLOCATE [PREPARE] name | ALL`.
fn parse_deallocate(stmt: &str) -> Option<Intercept> {
    let words = words(&normalize(stmt));
    let rest = match &words[1..] {
        [p, rest @ ..] if p.eq_ignore_ascii_case("prepare") => rest,
        rest => rest,
    };
    match rest {
        [all] if all.eq_ignore_ascii_case("all") => Some(Intercept::Deallocate(None)),
        [name] => {
            let name = if name.starts_with('"') {
                unquote(name)
            } else {
                name.to_ascii_lowercase()
            };
            Some(Intercept::Deallocate(Some(name)))
        }
        _ => None,
    }
}

/// `SELECT f() [AS x], ...` with no `FROM`, every item a session function.
fn parse_functions(stmt: &str) -> Option<Vec<(String, Function)>> {
    let n = normalize(stmt);
    let (items, rest) = split_select(&n);
    if !rest.is_empty() || items.is_empty() {
        return None;
    }
    items
        .into_iter()
        .map(|item| {
            let lower = item.to_ascii_lowercase();
            let (expr, alias) = match lower.rfind(" as ") {
                Some(at) => (&lower[..at], Some(unquote(item[at + 4..].trim()))),
                None => (lower.as_str(), None),
            };
            let expr = expr.trim();
            let expr = expr.strip_prefix("pg_catalog.").unwrap_or(expr);
            let (label, f) = match expr {
                "version()" => ("version", Function::Version),
                "current_database()" => ("current_database", Function::CurrentDatabase),
                "current_schema()" | "current_schema" => {
                    ("current_schema", Function::CurrentSchema)
                }
                "current_user" => ("current_user", Function::CurrentUser),
                "session_user" => ("session_user", Function::CurrentUser),
                "user" => ("user", Function::CurrentUser),
                "pg_backend_pid()" => ("pg_backend_pid", Function::BackendPid),
                _ => {
                    let arg = expr
                        .strip_prefix("current_setting(")?
                        .strip_suffix(')')?
                        .trim();
                    let def = setting(&unquote(arg))?;
                    ("current_setting", Function::Setting(def.name))
                }
            };
            Some((alias.unwrap_or_else(|| label.to_owned()), f))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &'static str, value: &str) -> Option<Intercept> {
        Some(Intercept::Set {
            name,
            value: Some(value.into()),
        })
    }

    #[test]
    fn jdbc_and_friends_set_statements() {
        assert_eq!(
            intercept("SET extra_float_digits = 3"),
            set("extra_float_digits", "3")
        );
        assert_eq!(
            intercept("SET application_name = 'PostgreSQL JDBC Driver'"),
            set("application_name", "PostgreSQL JDBC Driver")
        );
        assert_eq!(
            intercept("set client_encoding to 'UTF8'"),
            set("client_encoding", "UTF8")
        );
        assert_eq!(
            intercept("SET NAMES 'utf8'"),
            set("client_encoding", "UTF8")
        );
        assert_eq!(intercept("SET TIME ZONE 'UTC'"), set("TimeZone", "UTC"));
        assert_eq!(
            intercept("SET SESSION datestyle TO 'ISO'"),
            set("DateStyle", "ISO, MDY")
        );
        assert_eq!(
            intercept("SET search_path TO myschema, public"),
            set("search_path", "myschema, public")
        );
        assert_eq!(
            intercept("RESET application_name"),
            Some(Intercept::Set {
                name: "application_name",
                value: None
            })
        );
        // Values Meridian cannot honour, and unknown settings, go to SQL.
        assert_eq!(intercept("SET TimeZone = 'America/New_York'"), None);
        assert_eq!(intercept("SET statement_timeout = 5"), None);
        assert_eq!(
            intercept("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            None
        );
    }

    #[test]
    fn show_deallocate_discard() {
        assert_eq!(
            intercept("SHOW TRANSACTION ISOLATION LEVEL"),
            Some(Intercept::Show {
                name: "transaction_isolation"
            })
        );
        assert_eq!(
            intercept("show datestyle"),
            Some(Intercept::Show { name: "DateStyle" })
        );
        assert_eq!(intercept("SHOW some_unknown_thing"), None);
        assert_eq!(
            intercept("DEALLOCATE ALL"),
            Some(Intercept::Deallocate(None))
        );
        assert_eq!(
            intercept("DEALLOCATE PREPARE S_1"),
            Some(Intercept::Deallocate(Some("s_1".into())))
        );
        assert_eq!(
            intercept("deallocate \"_pg3_0\""),
            Some(Intercept::Deallocate(Some("_pg3_0".into())))
        );
        assert_eq!(intercept("DISCARD ALL"), Some(Intercept::DiscardAll));
    }

    #[test]
    fn session_functions() {
        let Some(Intercept::Functions(f)) = intercept("SELECT version(), current_database() AS db")
        else {
            panic!("not intercepted");
        };
        assert_eq!(
            f,
            vec![
                ("version".to_owned(), Function::Version),
                ("db".to_owned(), Function::CurrentDatabase)
            ]
        );
        let settings = Settings::new("15.0", "meridian", "");
        assert_eq!(settings.get("server_version_num"), "150000");
        let v = function_value(&Function::Version, &settings, "meridian", "meridian", 1);
        assert!(matches!(v, Value::Text(s) if s.starts_with("PostgreSQL 15.0 (Meridian")));
        assert_eq!(intercept("SELECT version() FROM t"), None);
        assert_eq!(intercept("SELECT current_user_id FROM users"), None);
        assert_eq!(intercept("SELECT * FROM users"), None);
        assert_eq!(intercept("INSERT INTO t VALUES (1)"), None);
    }

    #[test]
    fn settings_remember_and_reset() {
        let mut settings = Settings::new("15.0", "u", "app");
        assert_eq!(settings.set("application_name", Some("x".into())), "x");
        assert_eq!(settings.get("application_name"), "x");
        assert_eq!(settings.set("application_name", None), "app");
        for name in REPORTED {
            assert!(
                !settings.get(name).is_empty() || *name == "application_name",
                "{name}"
            );
        }
    }
}
