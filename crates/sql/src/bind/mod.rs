//! The binder: from sqlparser's syntax tree to a typed plan.
//!
//! Binding resolves every name against the catalog and the query's scopes,
//! types every expression (inserting casts where PostgreSQL would coerce),
//! checks the rules PostgreSQL checks (grouping, ambiguity, column counts),
//! and builds the operator tree, choosing access paths through the planner
//! on the way. The result is a [`Statement`](crate::plan::Statement): a
//! plan, its result columns and the subquery plans its expressions use.
//!
//! # Catalog access
//!
//! Binding is synchronous, but table descriptors live in storage. The
//! binder is therefore given a snapshot of the descriptors it may need (the
//! session's per-transaction cache); when it meets a table that is not in
//! the snapshot it stops, names the table in [`Binder::missing`], and the
//! session loads that descriptor (under a shared lock) and binds again.
//! Statements name few tables, so this converges in a few rounds.
//!
//! # Scopes and correlation
//!
//! Each query level is a [`Frame`] with the [`Scope`] of its `FROM` clause:
//! the visible columns, their table names and types, in row order. A name
//! not found in the current frame is looked up in the enclosing ones; a hit
//! there becomes an [`Expr::Outer`] in the subquery and a *correlation
//! argument* (an expression over the enclosing row) on the
//! [`Expr::Subquery`] node, so the executor can hand the subquery its outer
//! values per row. Derived tables in `FROM` are bound in *transparent*
//! frames: they see the enclosing query's outer values but not their
//! siblings (no `LATERAL`).
//!
//! # Parameters
//!
//! `$n` placeholders get their types from context: the other operand of a
//! comparison or arithmetic, the target column of an `INSERT` or `UPDATE`,
//! a function's parameter. Types the client declared win. A parameter no
//! context types is text.

mod dml;
mod expr;
mod from;
mod function;
pub(crate) mod names;
mod query;

use std::collections::HashMap;
use std::sync::Arc;

use meridian_error::{Error, Result};
use sqlparser::ast;

use crate::catalog::TableDesc;
use crate::expr::Expr;
use crate::plan::{AggCall, Plan, Statement};
use crate::types::DataType;

pub(crate) use names::{data_type_from_ast, ident, object_name};

/// The table descriptors a binding may use: `None` records that the table
/// does not exist.
pub(crate) type TableSnapshot = HashMap<String, Option<Arc<TableDesc>>>;

/// Facts about the session that some expressions read at bind time.
#[derive(Clone, Debug)]
pub(crate) struct SessionInfo {
    /// `current_user`.
    pub user: String,
    /// `current_database()`.
    pub database: String,
}

/// One visible column.
#[derive(Clone, Debug)]
pub(crate) struct ScopeColumn {
    /// The table (or alias) it belongs to.
    pub table: Option<String>,
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: DataType,
    /// Not part of `*` and not found by unqualified names (the hidden row
    /// id, or the right copy of a `USING` column).
    pub hidden: bool,
}

/// The columns of a row, in order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    /// The columns.
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    /// Finds `name` (qualified by `table` if given): `Ok(None)` if absent,
    /// 42702 if it matches more than one column.
    pub(crate) fn find(&self, table: Option<&str>, name: &str) -> Result<Option<usize>> {
        let mut found = None;
        for (i, c) in self.columns.iter().enumerate() {
            let table_ok = match table {
                Some(t) => c.table.as_deref() == Some(t),
                None => !c.hidden || c.name == crate::catalog::ROWID,
            };
            if table_ok && c.name == name {
                if found.is_some() {
                    return Err(Error::AmbiguousColumn(name.to_string()));
                }
                found = Some(i);
            }
        }
        Ok(found)
    }

    /// Whether a table (alias) of this name is in scope.
    pub(crate) fn has_table(&self, table: &str) -> bool {
        self.columns
            .iter()
            .any(|c| c.table.as_deref() == Some(table))
    }

    /// The scope of `self` followed by `other` (a join's row).
    pub(crate) fn concat(&self, other: &Scope) -> Scope {
        let mut columns = self.columns.clone();
        columns.extend(other.columns.iter().cloned());
        Scope { columns }
    }
}

/// One query level.
#[derive(Debug, Default)]
struct Frame {
    /// The columns of its `FROM` clause.
    scope: Scope,
    /// Expressions over the enclosing frame's row that this level reads as
    /// [`Expr::Outer`].
    correlations: Vec<Expr>,
    /// A derived table: outer references pass through unchanged.
    transparent: bool,
}

/// A `WITH` query visible by name.
#[derive(Clone, Debug)]
struct Cte {
    /// The name.
    name: String,
    /// Its definition.
    query: ast::Query,
    /// Column aliases.
    columns: Vec<String>,
}

/// Binds statements; see the module docs.
pub(crate) struct Binder<'a> {
    /// The catalog snapshot.
    tables: &'a TableSnapshot,
    /// Session facts.
    session: &'a SessionInfo,
    /// The parameter types (`Unknown` until context types them).
    pub params: Vec<DataType>,
    /// Parameters whose type the client declared.
    fixed_params: Vec<bool>,
    /// Subquery plans, by id.
    subqueries: Vec<Plan>,
    /// The query levels being bound.
    frames: Vec<Frame>,
    /// Visible `WITH` queries, innermost last.
    ctes: Vec<Cte>,
    /// Tables used, for plan-cache validation.
    used: Vec<Arc<TableDesc>>,
    /// Aggregates collected while binding a select list or `HAVING`.
    aggregates: Option<Vec<AggCall>>,
    /// Whether an aggregate's arguments are being bound (no nesting).
    in_aggregate: bool,
    /// A table that was needed but is not in the snapshot.
    pub missing: Option<String>,
}

impl<'a> Binder<'a> {
    /// A binder over `tables`, with the client's parameter types.
    pub(crate) fn new(
        tables: &'a TableSnapshot,
        session: &'a SessionInfo,
        param_types: &[Option<DataType>],
    ) -> Self {
        let params: Vec<DataType> = param_types
            .iter()
            .map(|t| t.clone().unwrap_or(DataType::Unknown))
            .collect();
        let fixed_params = params.iter().map(|t| *t != DataType::Unknown).collect();
        Binder {
            tables,
            session,
            params,
            fixed_params,
            subqueries: Vec::new(),
            frames: vec![Frame::default()],
            ctes: Vec::new(),
            used: Vec::new(),
            aggregates: None,
            in_aggregate: false,
            missing: None,
        }
    }

    /// Binds a statement that reads or writes rows (query, `INSERT`,
    /// `UPDATE`, `DELETE`).
    pub(crate) fn bind_statement(
        &mut self,
        stmt: &ast::Statement,
    ) -> Result<(Statement, Vec<DataType>)> {
        let (plan, columns, verb) = match stmt {
            ast::Statement::Query(q) => {
                let (plan, columns) = self.bind_query(q)?;
                (plan, columns, "SELECT")
            }
            ast::Statement::Insert(insert) => {
                let (plan, columns) = self.bind_insert(insert)?;
                (plan, columns, "INSERT")
            }
            ast::Statement::Update(update) => {
                let (plan, columns) = self.bind_update(update)?;
                (plan, columns, "UPDATE")
            }
            ast::Statement::Delete(delete) => {
                let (plan, columns) = self.bind_delete(delete)?;
                (plan, columns, "DELETE")
            }
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "statement not supported: {}",
                    first_words(&other.to_string())
                )))
            }
        };
        let columns = resolve_unknown(columns);
        let params = std::mem::take(&mut self.params)
            .into_iter()
            .map(|t| {
                if t == DataType::Unknown {
                    DataType::Text
                } else {
                    t
                }
            })
            .collect();
        Ok((
            Statement {
                plan,
                columns,
                subqueries: std::mem::take(&mut self.subqueries),
                tables: std::mem::take(&mut self.used),
                verb,
            },
            params,
        ))
    }

    /// Binds a standalone expression with no columns in scope (a column
    /// default), coerced to `ty` as on assignment.
    pub(crate) fn bind_default(mut self, e: &ast::Expr, ty: &DataType) -> Result<Expr> {
        let (bound, from) = self.bind_expr(e)?;
        self.coerce(bound, &from, ty, crate::cast::CastContext::Assignment)
    }

    /// The descriptor of table `name`; records it as missing if the
    /// snapshot does not know it.
    fn table(&mut self, name: &str) -> Result<Arc<TableDesc>> {
        match self.tables.get(name) {
            Some(Some(t)) => {
                if !self.used.iter().any(|u| u.id == t.id) {
                    self.used.push(t.clone());
                }
                Ok(t.clone())
            }
            Some(None) => Err(Error::UndefinedTable(name.to_string())),
            None => {
                self.missing = Some(name.to_string());
                Err(Error::UndefinedTable(name.to_string()))
            }
        }
    }

    /// The current frame.
    fn frame(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("there is always a frame")
    }

    /// Sets the current frame's scope.
    fn set_scope(&mut self, scope: Scope) {
        self.frame().scope = scope;
    }

    /// The current frame's scope.
    fn scope(&self) -> &Scope {
        &self.frames.last().expect("there is always a frame").scope
    }

    /// Resolves a column reference through the frames, innermost first.
    fn resolve_column(&mut self, table: Option<&str>, name: &str) -> Result<(Expr, DataType)> {
        let depth = self.frames.len() - 1;
        for level in (0..=depth).rev() {
            if let Some(i) = self.frames[level].scope.find(table, name)? {
                let ty = self.frames[level].scope.columns[i].ty.clone();
                let expr = self.capture(level, Expr::Column(i))?;
                return Ok((expr, ty));
            }
        }
        Err(match table {
            // PostgreSQL says `missing FROM-clause entry for table "t"`
            // (42P01); the error enum's 42P01 variant names the relation.
            Some(t) if !self.frames.iter().any(|f| f.scope.has_table(t)) => {
                Error::UndefinedTable(t.to_string())
            }
            Some(t) => Error::UndefinedColumn(format!("column {t}.{name} does not exist")),
            None => Error::UndefinedColumn(format!("column \"{name}\" does not exist")),
        })
    }

    /// Makes `expr`, valid in frame `level`, valid in the current frame by
    /// threading it through each inner level's correlation arguments.
    fn capture(&mut self, level: usize, expr: Expr) -> Result<Expr> {
        let mut e = expr;
        for l in level + 1..self.frames.len() {
            if self.frames[l].transparent {
                if matches!(e, Expr::Column(_)) {
                    return Err(Error::FeatureNotSupported(
                        "a subquery in FROM cannot refer to other relations of the same query level (LATERAL)".into(),
                    ));
                }
                continue;
            }
            let correlations = &mut self.frames[l].correlations;
            let idx = match correlations.iter().position(|c| *c == e) {
                Some(i) => i,
                None => {
                    correlations.push(e);
                    correlations.len() - 1
                }
            };
            e = Expr::Outer(idx);
        }
        Ok(e)
    }

    /// Binds `query` as a subquery: its plan is registered and its
    /// correlation arguments returned.
    fn bind_subquery(
        &mut self,
        query: &ast::Query,
    ) -> Result<(usize, Vec<Expr>, Vec<crate::plan::OutputColumn>)> {
        self.frames.push(Frame::default());
        let saved_aggs = self.aggregates.take();
        let saved_in = std::mem::replace(&mut self.in_aggregate, false);
        let result = self.bind_query(query);
        self.aggregates = saved_aggs;
        self.in_aggregate = saved_in;
        let frame = self.frames.pop().expect("pushed above");
        let (plan, columns) = result?;
        self.subqueries.push(plan);
        Ok((
            self.subqueries.len() - 1,
            frame.correlations,
            resolve_unknown(columns),
        ))
    }

    /// Binds a derived table (a subquery in `FROM`) in a transparent frame.
    fn bind_derived(
        &mut self,
        query: &ast::Query,
    ) -> Result<(Plan, Vec<crate::plan::OutputColumn>)> {
        self.frames.push(Frame {
            transparent: true,
            ..Frame::default()
        });
        let saved_aggs = self.aggregates.take();
        let result = self.bind_query(query);
        self.aggregates = saved_aggs;
        self.frames.pop();
        result.map(|(plan, columns)| (plan, resolve_unknown(columns)))
    }
}

/// Columns of still-untyped literals are text once they leave their query
/// (PostgreSQL resolves `unknown` outputs to `text`).
fn resolve_unknown(columns: Vec<crate::plan::OutputColumn>) -> Vec<crate::plan::OutputColumn> {
    columns
        .into_iter()
        .map(|mut c| {
            if c.ty == DataType::Unknown {
                c.ty = DataType::Text;
            }
            c
        })
        .collect()
}

/// The first few words of a statement, for error messages.
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
