//! The extended query protocol: `Parse`, `Bind`, `Describe`, `Execute`.
//!
//! `Parse` prepares through the session once and keeps the prepared
//! statement (unnamed ones also in a per-connection cache keyed by text and
//! parameter types); `Bind` decodes every parameter into a [`Value`] of the
//! statement's parameter type, in the format the client chose for it;
//! `Execute` runs a portal once, keeps its rows and hands them out
//! `max_rows` at a time, with `PortalSuspended` between batches and the
//! command tag after the last. Errors are returned to the message loop,
//! which reports them and skips to `Sync`.

use std::sync::Arc;

use meridian_error::Error;
use meridian_sql::{DataType, QueryResult, Value};
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{BindComplete, ParseComplete, PortalSuspended};
use pgwire::messages::response::EmptyQueryResponse;
use pgwire::messages::PgWireBackendMessage;

use super::{
    cancellable, row_description, send_row, Answer, Conn, Kind, Portal, PortalState, RowsTag,
    Statement, CACHE_SIZE, FLUSH_AT,
};
use crate::backend::Backend;
use crate::compat::intercept;
use crate::protocol::{format_at, formats_fit};
use crate::sqlstate::WireError;
use crate::sqltext::{first_keyword, split_statements};
use crate::values::{decode_param, WireColumn, WireType};

impl<B: Backend> Conn<B> {
    /// `Parse`: prepares (or finds in the cache) and stores a statement.
    pub(super) async fn parse(
        &mut self,
        name: String,
        sql: &str,
        oids: Vec<u32>,
    ) -> Result<(), WireError> {
        if !name.is_empty() && self.statements.contains_key(&name) {
            return Err(WireError::new(
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        let cached = if name.is_empty() {
            self.cache
                .get(sql)
                .filter(|s| s.client_oids == oids)
                .cloned()
        } else {
            None
        };
        let statement = match cached {
            Some(statement) => statement,
            None => {
                let statement = Arc::new(self.prepare(sql, oids).await?);
                if name.is_empty() && !matches!(statement.kind, Kind::Empty) {
                    if self.cache.len() >= CACHE_SIZE {
                        self.cache.clear();
                    }
                    self.cache.insert(sql.to_owned(), statement.clone());
                }
                statement
            }
        };
        if self.wire_failed && self.block_failed() && !statement.is_exit() {
            return Err(Error::InFailedTransaction.into());
        }
        self.statements.insert(name, statement);
        self.io
            .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()));
        Ok(())
    }

    /// Prepares `sql`.
    async fn prepare(
        &mut self,
        sql: &str,
        oids: Vec<u32>,
    ) -> Result<Statement<B::Prepared>, WireError> {
        let statements = split_statements(sql);
        let text = match statements.as_slice() {
            [] => {
                return Ok(Statement {
                    kind: Kind::Empty,
                    keyword: String::new(),
                    params: Vec::new(),
                    columns: None,
                    client_oids: oids,
                })
            }
            [one] => *one,
            _ => {
                return Err(WireError::new(
                    "42601",
                    "cannot insert multiple commands into a prepared statement",
                ))
            }
        };
        let keyword = first_keyword(text);
        if let Some(icpt) = intercept(text) {
            let mut params = icpt.param_types();
            for (i, &oid) in oids.iter().enumerate() {
                if i >= params.len() {
                    params.push(WireType::text());
                }
                if oid != 0 && params[i].oid != oid {
                    // The client's declared type wins where it is one of ours.
                    if let Some(ty) = DataType::from_pg_oid(oid) {
                        params[i] = WireType::of(&ty);
                    }
                }
            }
            return Ok(Statement {
                columns: icpt.columns(),
                kind: Kind::Intercept(icpt),
                keyword,
                params,
                client_oids: oids,
            });
        }
        let types: Vec<Option<DataType>> = oids
            .iter()
            .map(|&oid| {
                if oid == 0 {
                    None
                } else {
                    DataType::from_pg_oid(oid)
                }
            })
            .collect();
        let prepared = cancellable(&self.cancel.slot, self.session.prepare(sql, &types))
            .await
            .unwrap_or(Err(Error::QueryCanceled))?;
        let params = B::param_types(&prepared).iter().map(WireType::of).collect();
        let columns = (!B::columns(&prepared).is_empty())
            .then(|| B::columns(&prepared).iter().map(WireColumn::of).collect());
        Ok(Statement {
            kind: Kind::Sql(prepared),
            keyword,
            params,
            columns,
            client_oids: oids,
        })
    }

    /// `Bind`: decodes parameters and creates a portal.
    pub(super) fn bind(
        &mut self,
        portal: String,
        statement_name: &str,
        param_formats: &[i16],
        params: Vec<Option<bytes::Bytes>>,
        formats: Vec<i16>,
    ) -> Result<(), WireError> {
        let statement = self
            .statements
            .get(statement_name)
            .cloned()
            .ok_or_else(|| {
                WireError::new(
                    "26000",
                    format!("prepared statement \"{statement_name}\" does not exist"),
                )
            })?;
        if params.len() != statement.params.len() {
            return Err(WireError::protocol(format!(
                "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires {}",
                params.len(),
                statement.params.len()
            )));
        }
        if !formats_fit(param_formats, params.len()) {
            return Err(WireError::protocol(format!(
                "bind message has {} parameter formats but {} parameters",
                param_formats.len(),
                params.len()
            )));
        }
        let columns = statement.columns.as_ref().map_or(0, Vec::len);
        if !formats_fit(&formats, columns) {
            return Err(WireError::protocol(format!(
                "bind message has {} result formats but query has {columns} columns",
                formats.len()
            )));
        }
        if !portal.is_empty() && self.portals.contains_key(&portal) {
            return Err(WireError::new(
                "42P03",
                format!("cursor \"{portal}\" already exists"),
            ));
        }
        if self.wire_failed && self.block_failed() && !statement.is_exit() {
            return Err(Error::InFailedTransaction.into());
        }
        let mut values = Vec::with_capacity(params.len());
        for (i, param) in params.iter().enumerate() {
            values.push(match param {
                None => Value::Null,
                Some(bytes) => decode_param(
                    bytes,
                    &statement.params[i],
                    format_at(param_formats, i),
                    i + 1,
                )?,
            });
        }
        self.portals.insert(
            portal,
            Portal {
                statement,
                params: values,
                formats,
                state: PortalState::Ready,
            },
        );
        self.io
            .send(PgWireBackendMessage::BindComplete(BindComplete::new()));
        Ok(())
    }

    /// `Describe` of a statement (`S`) or portal (`P`).
    pub(super) fn describe(&mut self, kind: u8, name: &str) -> Result<(), WireError> {
        if kind == b'S' {
            let statement = self.statements.get(name).ok_or_else(|| {
                WireError::new(
                    "26000",
                    format!("prepared statement \"{name}\" does not exist"),
                )
            })?;
            let oids = statement.params.iter().map(|t| t.oid).collect();
            let columns = statement.columns.as_ref().map(|c| row_description(c, &[]));
            self.io.send(PgWireBackendMessage::ParameterDescription(
                ParameterDescription::new(oids),
            ));
            self.io
                .send(columns.unwrap_or(PgWireBackendMessage::NoData(NoData::new())));
        } else {
            let portal = self.portals.get(name).ok_or_else(|| {
                WireError::new("34000", format!("portal \"{name}\" does not exist"))
            })?;
            let msg = match &portal.statement.columns {
                Some(columns) => row_description(columns, &portal.formats),
                None => PgWireBackendMessage::NoData(NoData::new()),
            };
            self.io.send(msg);
        }
        Ok(())
    }

    /// `Execute`: runs a portal (the first time) and sends up to `max_rows`
    /// rows.
    pub(super) async fn execute(&mut self, name: String, max_rows: i32) -> Result<(), WireError> {
        let mut portal = self
            .portals
            .remove(&name)
            .ok_or_else(|| WireError::new("34000", format!("portal \"{name}\" does not exist")))?;
        let result = self.execute_portal(&mut portal, max_rows).await;
        self.portals.insert(name, portal);
        result
    }

    /// Runs and/or drains `portal`.
    async fn execute_portal(
        &mut self,
        portal: &mut Portal<B::Prepared>,
        max_rows: i32,
    ) -> Result<(), WireError> {
        if matches!(portal.state, PortalState::Ready) {
            let statement = portal.statement.clone();
            let params = std::mem::take(&mut portal.params);
            portal.state = PortalState::Done(None);
            match &statement.kind {
                Kind::Empty => {
                    self.io.send(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ));
                    return Ok(());
                }
                Kind::Sql(prepared) => {
                    if self.wire_failed {
                        if let Some(result) = self.exit_failed_block(&statement.keyword).await {
                            let tag = result?;
                            self.command_complete(tag.clone());
                            portal.state = PortalState::Done(Some(tag));
                            return Ok(());
                        }
                    }
                    let run = self.session.execute_prepared(prepared, params);
                    let result = cancellable(&self.cancel.slot, run)
                        .await
                        .unwrap_or(Err(Error::QueryCanceled))?;
                    match result {
                        QueryResult::Rows { columns, rows } => {
                            // Use the result's own types if the statement did
                            // not describe matching columns.
                            let types = match &statement.columns {
                                Some(c) if c.len() == columns.len() => None,
                                _ => Some(columns.iter().map(WireColumn::of).collect()),
                            };
                            portal.state = PortalState::Rows {
                                rows,
                                next: 0,
                                types,
                                tag: RowsTag::for_keyword(&statement.keyword),
                            };
                        }
                        QueryResult::Command { tag } => {
                            self.command_complete(tag.clone());
                            portal.state = PortalState::Done(Some(tag));
                            return Ok(());
                        }
                    }
                }
                Kind::Intercept(icpt) => match self.answer(icpt, &params).await? {
                    Answer::Command(tag) => {
                        self.command_complete(tag.clone());
                        portal.state = PortalState::Done(Some(tag));
                        return Ok(());
                    }
                    Answer::Rows { rows, tag, .. } => {
                        portal.state = PortalState::Rows {
                            rows,
                            next: 0,
                            types: None,
                            tag,
                        };
                    }
                },
            }
        }
        let mut finished = false;
        match &mut portal.state {
            PortalState::Ready => unreachable!("the portal was just run"),
            PortalState::Done(tag) => {
                let tag = tag.clone().unwrap_or_else(|| "SELECT 0".to_owned());
                self.command_complete(tag);
            }
            PortalState::Rows {
                rows,
                next,
                types,
                tag,
            } => {
                let columns: &[WireColumn] = match types {
                    Some(types) => types,
                    None => portal.statement.columns.as_deref().unwrap_or(&[]),
                };
                let limit = if max_rows <= 0 {
                    rows.len()
                } else {
                    (*next + max_rows as usize).min(rows.len())
                };
                let start = *next;
                for row in &rows[start..limit] {
                    send_row(&mut self.io.out, row, columns, &portal.formats)?;
                    if self.io.out.len() >= FLUSH_AT {
                        self.io.flush().await.map_err(|e| {
                            WireError::fatal("08006", format!("connection failure: {e}"))
                        })?;
                    }
                }
                *next = limit;
                if limit < rows.len() {
                    self.io
                        .send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()));
                } else {
                    let tag = tag.render(limit - start);
                    self.command_complete(tag);
                    finished = true;
                }
            }
        }
        if finished {
            portal.state = PortalState::Done(None);
        }
        Ok(())
    }
}
