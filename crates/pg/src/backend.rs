//! The seam between the wire layer and the SQL layer.
//!
//! A connection talks to its [`Session`] through the [`Backend`] trait, which
//! is the part of the SQL API the wire layer uses, one to one. The server
//! always plugs in a real [`Session`]; the crate's own protocol tests plug in
//! a small scripted backend, so the protocol machinery (portals, formats,
//! cancellation, error recovery) is tested independently of the SQL engine.
//!
//! The futures are `Send` because every connection runs on its own tokio
//! task.

use std::future::Future;

use meridian_error::Result;
use meridian_sql::{
    Column, DataType, PreparedStatement, QueryResult, Session, TableInfo, TxnStatus, Value,
};
use meridian_txn::TxnEngine;

/// What a connection needs from the SQL layer.
pub(crate) trait Backend: Send + 'static {
    /// A prepared statement.
    type Prepared: Send + Sync + std::fmt::Debug + 'static;

    /// Simple query: runs every statement of `sql`, stopping at an error.
    fn execute(&mut self, sql: &str) -> impl Future<Output = Vec<Result<QueryResult>>> + Send;

    /// Extended query `Parse`.
    fn prepare(
        &mut self,
        sql: &str,
        param_types: &[Option<DataType>],
    ) -> impl Future<Output = Result<Self::Prepared>> + Send;

    /// Extended query `Execute` of a bound statement.
    fn execute_prepared(
        &mut self,
        stmt: &Self::Prepared,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<QueryResult>> + Send;

    /// The parameter types of a prepared statement.
    fn param_types(stmt: &Self::Prepared) -> &[DataType];

    /// The result columns of a prepared statement.
    fn columns(stmt: &Self::Prepared) -> &[Column];

    /// The transaction status.
    fn transaction_status(&self) -> TxnStatus;

    /// The tables, for the catalog emulation.
    fn list_tables(&mut self) -> impl Future<Output = Result<Vec<TableInfo>>> + Send;

    /// Who logged in, to which database (for `current_user` and
    /// `current_database()` inside queries).
    fn set_identity(&mut self, _user: &str, _database: &str) {}
}

impl<E: TxnEngine + Clone> Backend for Session<E> {
    type Prepared = PreparedStatement;

    fn execute(&mut self, sql: &str) -> impl Future<Output = Vec<Result<QueryResult>>> + Send {
        Session::execute(self, sql)
    }

    fn prepare(
        &mut self,
        sql: &str,
        param_types: &[Option<DataType>],
    ) -> impl Future<Output = Result<PreparedStatement>> + Send {
        Session::prepare(self, sql, param_types)
    }

    fn execute_prepared(
        &mut self,
        stmt: &PreparedStatement,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<QueryResult>> + Send {
        Session::execute_prepared(self, stmt, params)
    }

    fn param_types(stmt: &PreparedStatement) -> &[DataType] {
        stmt.param_types()
    }

    fn columns(stmt: &PreparedStatement) -> &[Column] {
        stmt.columns()
    }

    fn transaction_status(&self) -> TxnStatus {
        Session::transaction_status(self)
    }

    fn list_tables(&mut self) -> impl Future<Output = Result<Vec<TableInfo>>> + Send {
        Session::list_tables(self)
    }

    fn set_identity(&mut self, user: &str, database: &str) {
        Session::set_identity(self, user, database);
    }
}
