//! Names and type names: identifier case folding, qualified names, SQL
//! type syntax, and the column names PostgreSQL gives to expressions.
//!
//! Unquoted identifiers fold to lower case and quoted ones keep their case,
//! as in PostgreSQL. A schema qualifier (`public.t`) is accepted and
//! ignored: Meridian has one schema. Output column names follow
//! PostgreSQL's `FigureColname`: a column's name, a function's name, the
//! type name of a cast of a constant, `case`, `exists`, else `?column?`.

use meridian_error::{Error, Result};
use sqlparser::ast;

use crate::types::DataType;

/// An identifier, case-folded unless quoted.
pub(crate) fn ident(id: &ast::Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

/// The identifiers of an object name, case-folded.
pub(crate) fn name_parts(name: &ast::ObjectName) -> Result<Vec<String>> {
    name.0
        .iter()
        .map(|part| match part {
            ast::ObjectNamePart::Identifier(id) => Ok(ident(id)),
            ast::ObjectNamePart::Function(_) => {
                Err(Error::FeatureNotSupported("function-valued names".into()))
            }
        })
        .collect()
}

/// A table or index name: the last part, after an optional schema (which
/// must be `public` or `pg_catalog`-free).
pub(crate) fn object_name(name: &ast::ObjectName) -> Result<String> {
    let parts = name_parts(name)?;
    match parts.as_slice() {
        [n] => Ok(n.clone()),
        [schema, n] if schema == "public" => Ok(n.clone()),
        [_, schema, n] if schema == "public" => Ok(n.clone()),
        _ => Err(Error::FeatureNotSupported(format!(
            "schema-qualified name \"{}\"",
            parts.join(".")
        ))),
    }
}

/// A length or precision modifier as `u32`.
fn modifier(v: u64, what: &str) -> Result<u32> {
    u32::try_from(v).ok().filter(|n| *n > 0).ok_or_else(|| {
        Error::InvalidStatement(format!("length for type {what} must be at least 1"))
    })
}

/// A character length.
fn char_len(len: &Option<ast::CharacterLength>, what: &str) -> Result<Option<u32>> {
    match len {
        None => Ok(None),
        Some(ast::CharacterLength::IntegerLength { length, .. }) => {
            Ok(Some(modifier(*length, what)?))
        }
        Some(ast::CharacterLength::Max) => Ok(None),
    }
}

/// A numeric's precision and scale, checked like PostgreSQL.
fn numeric(info: &ast::ExactNumberInfo) -> Result<DataType> {
    let (precision, scale) = match info {
        ast::ExactNumberInfo::None => (None, None),
        ast::ExactNumberInfo::Precision(p) => (Some(*p), Some(0)),
        ast::ExactNumberInfo::PrecisionAndScale(p, s) => (Some(*p), Some(*s)),
    };
    if let Some(p) = precision {
        if !(1..=1000).contains(&p) {
            return Err(Error::InvalidStatement(format!(
                "NUMERIC precision {p} must be between 1 and 1000"
            )));
        }
        let s = scale.unwrap_or(0);
        if s < 0 || s as u64 > p {
            return Err(Error::InvalidStatement(format!(
                "NUMERIC scale {s} must be between 0 and precision {p}"
            )));
        }
        if s > 28 {
            return Err(Error::FeatureNotSupported(format!(
                "NUMERIC scale {s} is larger than the 28 digits Meridian keeps"
            )));
        }
    }
    Ok(DataType::Numeric {
        precision: precision.map(|p| p as u32),
        scale: scale.map(|s| s as u32),
    })
}

/// 42704, `type "x" does not exist`.
pub(crate) fn undefined_type(name: &str) -> Error {
    Error::UndefinedObject(format!("type \"{name}\" does not exist"))
}

/// The Meridian type of a SQL type name.
pub(crate) fn data_type_from_ast(ty: &ast::DataType) -> Result<DataType> {
    use ast::DataType as A;
    Ok(match ty {
        A::Bool | A::Boolean => DataType::Bool,
        A::SmallInt(_) | A::Int2(_) => DataType::Int2,
        A::Int(_) | A::Integer(_) | A::Int4(_) => DataType::Int4,
        A::BigInt(_) | A::Int8(_) => DataType::Int8,
        A::Real | A::Float4 => DataType::Float4,
        A::Double(_) | A::DoublePrecision | A::Float8 => DataType::Float8,
        A::Float(info) => match info {
            ast::ExactNumberInfo::Precision(p) if *p <= 24 => DataType::Float4,
            _ => DataType::Float8,
        },
        A::Numeric(info) | A::Decimal(info) | A::Dec(info) => numeric(info)?,
        A::Text | A::String(None) => DataType::Text,
        A::Varchar(len) | A::CharacterVarying(len) | A::CharVarying(len) => {
            DataType::Varchar(char_len(len, "character varying")?)
        }
        A::Char(len) | A::Character(len) => {
            DataType::Char(char_len(len, "character")?.unwrap_or(1))
        }
        A::Bytea => DataType::Bytea,
        A::Date => DataType::Date,
        A::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            DataType::TimestampTz
        }
        A::Timestamp(_, _) => DataType::Timestamp,
        A::Interval { .. } => DataType::Interval,
        A::Custom(name, modifiers) => {
            let parts = name_parts(name)?;
            let base = parts.last().cloned().unwrap_or_default();
            let m: Vec<u64> = modifiers
                .iter()
                .filter_map(|m| m.to_string().parse().ok())
                .collect();
            match base.as_str() {
                "int2" => DataType::Int2,
                "int4" => DataType::Int4,
                "int8" => DataType::Int8,
                "float4" => DataType::Float4,
                "float8" => DataType::Float8,
                "bool" => DataType::Bool,
                "timestamptz" => DataType::TimestampTz,
                "bpchar" => DataType::Char(
                    m.first()
                        .map(|n| modifier(*n, "character"))
                        .transpose()?
                        .unwrap_or(1),
                ),
                "serial" | "serial4" => DataType::Int4,
                "bigserial" | "serial8" => DataType::Int8,
                "decimal" | "numeric" => match m.as_slice() {
                    [] => DataType::NUMERIC,
                    [p] => numeric(&ast::ExactNumberInfo::Precision(*p))?,
                    [p, s, ..] => numeric(&ast::ExactNumberInfo::PrecisionAndScale(*p, *s as i64))?,
                },
                "varchar" => DataType::Varchar(
                    m.first()
                        .map(|n| modifier(*n, "character varying"))
                        .transpose()?,
                ),
                "string" => DataType::Text,
                _ => return Err(undefined_type(&base)),
            }
        }
        other => return Err(undefined_type(&other.to_string().to_lowercase())),
    })
}

/// PostgreSQL's internal name of a type, used as the column name of a cast
/// constant (`SELECT 1::bigint` is column `int8`).
pub(crate) fn internal_type_name(ty: &DataType) -> &'static str {
    match ty {
        DataType::Bool => "bool",
        DataType::Int2 => "int2",
        DataType::Int4 => "int4",
        DataType::Int8 => "int8",
        DataType::Float4 => "float4",
        DataType::Float8 => "float8",
        DataType::Numeric { .. } => "numeric",
        DataType::Text => "text",
        DataType::Varchar(_) => "varchar",
        DataType::Char(_) => "bpchar",
        DataType::Bytea => "bytea",
        DataType::Date => "date",
        DataType::Timestamp => "timestamp",
        DataType::TimestampTz => "timestamptz",
        DataType::Interval => "interval",
        DataType::Unknown => "unknown",
    }
}

/// The column name PostgreSQL gives an unaliased select-list expression.
pub(crate) fn output_name(e: &ast::Expr) -> String {
    use ast::Expr as E;
    match e {
        E::Identifier(id) => ident(id),
        E::CompoundIdentifier(ids) => ids.last().map(ident).unwrap_or_default(),
        E::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(ident)
            .unwrap_or_else(|| "?column?".into()),
        E::Cast {
            expr, data_type, ..
        } => match output_name(expr).as_str() {
            "?column?" => data_type_from_ast(data_type)
                .map(|t| internal_type_name(&t).to_string())
                .unwrap_or_else(|_| "?column?".into()),
            name => name.to_string(),
        },
        E::Nested(inner) => output_name(inner),
        E::Case { .. } => "case".into(),
        E::Exists { .. } => "exists".into(),
        E::Extract { .. } => "extract".into(),
        E::Substring { .. } => "substring".into(),
        E::Trim { .. } => "btrim".into(),
        E::Position { .. } => "position".into(),
        E::Ceil { .. } => "ceil".into(),
        E::Floor { .. } => "floor".into(),
        E::TypedString(ts) => data_type_from_ast(&ts.data_type)
            .map(|t| internal_type_name(&t).to_string())
            .unwrap_or_else(|_| "?column?".into()),
        E::Interval(_) => "interval".into(),
        E::Subquery(q) => match q.body.as_ref() {
            ast::SetExpr::Select(s) => match s.projection.first() {
                Some(ast::SelectItem::ExprWithAlias { alias, .. }) => ident(alias),
                Some(ast::SelectItem::UnnamedExpr(e)) => output_name(e),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        _ => "?column?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn ty(sql: &str) -> Result<DataType> {
        let t = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_data_type()
            .unwrap();
        data_type_from_ast(&t)
    }

    fn name(sql: &str) -> String {
        let e = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap();
        output_name(&e)
    }

    #[test]
    fn type_names() {
        assert_eq!(ty("INT").unwrap(), DataType::Int4);
        assert_eq!(ty("double precision").unwrap(), DataType::Float8);
        assert_eq!(ty("varchar(20)").unwrap(), DataType::Varchar(Some(20)));
        assert_eq!(ty("char(4)").unwrap(), DataType::Char(4));
        assert_eq!(
            ty("numeric(10, 2)").unwrap(),
            DataType::Numeric {
                precision: Some(10),
                scale: Some(2)
            }
        );
        assert_eq!(ty("timestamptz").unwrap(), DataType::TimestampTz);
        assert_eq!(
            ty("timestamp with time zone").unwrap(),
            DataType::TimestampTz
        );
        assert_eq!(ty("timestamp").unwrap(), DataType::Timestamp);
        assert_eq!(ty("int8").unwrap(), DataType::Int8);
        assert!(matches!(ty("nosuchtype"), Err(Error::UndefinedObject(_))));
    }

    #[test]
    fn column_names_follow_postgres() {
        assert_eq!(name("a"), "a");
        assert_eq!(name("t.a"), "a");
        assert_eq!(name("count(*)"), "count");
        assert_eq!(name("1::bigint"), "int8");
        assert_eq!(name("x::text"), "x");
        assert_eq!(name("1 + 2"), "?column?");
        assert_eq!(name("CASE WHEN true THEN 1 END"), "case");
    }
}
