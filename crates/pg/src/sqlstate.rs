//! Errors on the wire: the one place a Meridian error becomes a SQLSTATE.
//!
//! Every failure a client sees is an `ErrorResponse` carrying a severity, a
//! five-character SQLSTATE, a message and, where PostgreSQL gives one, a
//! detail line. Two kinds of failure reach this module:
//!
//! - **Engine errors**: a [`meridian_error::Error`] returned by the SQL layer
//!   or anything below it. [`sqlstate`] maps each variant to the code
//!   PostgreSQL uses for the same condition, so drivers and retry loops can
//!   branch on it (`40001` means "run the whole transaction again").
//! - **Protocol errors**: things only the wire layer can get wrong — a
//!   `Bind` naming a statement that does not exist, a parameter count or
//!   binary encoding that does not match, a malformed message, a failed
//!   password. They are built directly as a [`WireError`] with PostgreSQL's
//!   code for them (`26000`, `08P01`, `22P03`, `28P01`, ...).
//!
//! A [`WireError`] marked fatal ends the connection after it is sent (failed
//! authentication, a broken message frame); every other error leaves the
//! connection usable, as in PostgreSQL.

use meridian_error::Error;
use pgwire::messages::response::ErrorResponse;

/// The SQLSTATE of a Meridian error, as PostgreSQL would report the same
/// condition: [`Error::sqlstate`], where the one mapping lives.
pub fn sqlstate(err: &Error) -> &'static str {
    err.sqlstate()
}

/// Longest message or detail sent; longer ones are cut (a message must fit
/// one protocol frame, and nobody reads a megabyte of error text).
const MAX_TEXT: usize = 8 * 1024;

/// An error as it goes on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WireError {
    /// The SQLSTATE.
    pub code: &'static str,
    /// The primary message.
    pub message: String,
    /// The optional detail line (`DETAIL:` in psql).
    pub detail: Option<String>,
    /// Whether the connection ends after the error (severity FATAL).
    pub fatal: bool,
}

impl WireError {
    /// A non-fatal error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            fatal: false,
        }
    }

    /// A fatal error: sent, then the connection is closed.
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            fatal: true,
            ..Self::new(code, message)
        }
    }

    /// A protocol violation (08P01): a message the server cannot accept.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new("08P01", message)
    }

    /// The `ErrorResponse` message carrying this error.
    pub fn to_response(&self) -> ErrorResponse {
        let severity = if self.fatal { "FATAL" } else { "ERROR" };
        let mut fields = Vec::with_capacity(5);
        fields.push((b'S', severity.to_owned()));
        fields.push((b'V', severity.to_owned()));
        fields.push((b'C', self.code.to_owned()));
        fields.push((b'M', clip(&self.message)));
        if let Some(detail) = &self.detail {
            fields.push((b'D', clip(detail)));
        }
        ErrorResponse::new(fields)
    }
}

impl From<Error> for WireError {
    fn from(err: Error) -> Self {
        let code = sqlstate(&err);
        let detail = match &err {
            Error::UniqueViolation { detail, .. } if !detail.is_empty() => Some(detail.clone()),
            _ => None,
        };
        let message = match err {
            // The bare string variants carry the whole message already.
            Error::SyntaxError(msg)
            | Error::UndefinedColumn(msg)
            | Error::UndefinedFunction(msg)
            | Error::DatatypeMismatch(msg)
            | Error::GroupingError(msg)
            | Error::InvalidStatement(msg)
            | Error::NumericOutOfRange(msg)
            | Error::InvalidTextRepresentation(msg)
            | Error::StringDataRightTruncation(msg)
            | Error::DatetimeFieldOverflow(msg)
            | Error::DuplicateColumn(msg)
            | Error::UndefinedObject(msg)
            | Error::InvalidDatetimeFormat(msg)
            | Error::FeatureNotSupported(msg)
            | Error::ActiveSqlTransaction(msg) => msg,
            other => other.to_string(),
        };
        Self {
            code,
            message,
            detail,
            fatal: false,
        }
    }
}

/// `text`, cut to at most [`MAX_TEXT`] bytes on a character boundary.
fn clip(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, with the code the issue (and PostgreSQL) asks for.
    #[test]
    fn every_variant_has_its_postgres_code() {
        let cases: Vec<(Error, &str)> = vec![
            (Error::Wounded { txn: 2, by: 1 }, "40001"),
            (
                Error::LockTimeout {
                    txn: 2,
                    waited_ms: 5,
                    what: "k".into(),
                },
                "40001",
            ),
            (Error::Aborted("x".into()), "40001"),
            (Error::AmbiguousCommit("x".into()), "40003"),
            (Error::SyntaxError("x".into()), "42601"),
            (Error::UndefinedTable("t".into()), "42P01"),
            (Error::UndefinedColumn("c".into()), "42703"),
            (Error::UndefinedFunction("f".into()), "42883"),
            (Error::DuplicateTable("t".into()), "42P07"),
            (Error::AmbiguousColumn("c".into()), "42702"),
            (Error::DatatypeMismatch("x".into()), "42804"),
            (Error::GroupingError("x".into()), "42803"),
            (Error::InvalidStatement("x".into()), "42000"),
            (Error::DuplicateColumn("x".into()), "42701"),
            (Error::UndefinedObject("x".into()), "42704"),
            (Error::InvalidDatetimeFormat("x".into()), "22007"),
            (
                Error::UniqueViolation {
                    constraint: "t_pkey".into(),
                    detail: "Key (id)=(1) already exists.".into(),
                },
                "23505",
            ),
            (
                Error::NotNullViolation {
                    table: "t".into(),
                    column: "c".into(),
                },
                "23502",
            ),
            (Error::DivisionByZero, "22012"),
            (Error::NumericOutOfRange("x".into()), "22003"),
            (Error::InvalidTextRepresentation("x".into()), "22P02"),
            (Error::StringDataRightTruncation("x".into()), "22001"),
            (Error::DatetimeFieldOverflow("x".into()), "22008"),
            (Error::CardinalityViolation, "21000"),
            (Error::FeatureNotSupported("x".into()), "0A000"),
            (Error::InFailedTransaction, "25P02"),
            (Error::ReadOnlyTransaction("INSERT".into()), "25006"),
            (Error::ActiveSqlTransaction("x".into()), "25001"),
            (Error::QueryCanceled, "57014"),
            (Error::InvalidInput("x".into()), "22023"),
            (Error::Corruption("x".into()), "XX001"),
            (Error::Io("x".into()), "58030"),
            (Error::ClockUncertain("x".into()), "58000"),
            (Error::Internal("x".into()), "XX000"),
        ];
        for (err, code) in cases {
            assert_eq!(sqlstate(&err), code, "{err:?}");
            assert_eq!(code.len(), 5);
        }
    }

    #[test]
    fn unique_violation_carries_its_detail() {
        let err = WireError::from(Error::UniqueViolation {
            constraint: "t_pkey".into(),
            detail: "Key (id)=(1) already exists.".into(),
        });
        assert_eq!(err.code, "23505");
        assert_eq!(
            err.message,
            "duplicate key value violates unique constraint \"t_pkey\""
        );
        assert_eq!(err.detail.as_deref(), Some("Key (id)=(1) already exists."));
        let response = err.to_response();
        assert!(response.fields.contains(&(b'C', "23505".to_owned())));
        assert!(response.fields.iter().any(|(k, _)| *k == b'D'));
    }

    #[test]
    fn string_variants_keep_their_message_and_long_text_is_clipped() {
        let err = WireError::from(Error::SyntaxError("syntax error at or near \"x\"".into()));
        assert_eq!(err.message, "syntax error at or near \"x\"");
        let long = WireError::new("XX000", "é".repeat(10_000));
        let message = &long.to_response().fields[3].1;
        assert!(message.len() <= MAX_TEXT + 3);
        assert!(message.ends_with("..."));
    }
}
