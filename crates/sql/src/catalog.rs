//! The catalog: table descriptors, stored in the keyspace and changed by
//! transactions like any other data.
//!
//! # Key layout
//!
//! Every key starts with a table id ([`keycode::encode_u64`]). Table id 0 is
//! reserved for the catalog itself:
//!
//! ```text
//! /0/1/<table name>   → table descriptor (format below)
//! /0/2/<index name>   → the name of the table the index belongs to
//! /0/3                → the next table id to hand out (8 bytes big-endian)
//! /<table id>/1/<primary key columns>               → row (see row.rs)
//! /<table id>/<index id>/<index columns>[/<pk>]     → primary key of the row
//! ```
//!
//! Names are keycode strings, so the descriptors of all tables are one
//! contiguous span in name order (`list_tables` scans it). Table ids start
//! at [`FIRST_TABLE_ID`] and are never reused; index id 1 is always the
//! primary index, secondary indexes count up from 2.
//!
//! # Transactions and locks
//!
//! Reading a descriptor is a transactional `get` with a shared lock, so a
//! statement that uses a table holds that lock until its transaction ends;
//! DDL reads the descriptor with an exclusive lock and rewrites it. DDL
//! therefore waits for (or, being older, wounds) every transaction that is
//! using the table, and a transaction never sees a table change shape under
//! it: the catalog is serializable like the data. Looking up a name that
//! does not exist also locks that name's key, so a concurrent `CREATE
//! TABLE` of the name waits too. Read-only and `AS OF SYSTEM TIME`
//! transactions read the descriptors of their snapshot, lock-free.
//!
//! Each descriptor carries a `version`, bumped by every change; prepared
//! statements cache their plan together with the versions it was built
//! against.
//!
//! # Descriptor encoding
//!
//! A format byte (1), then varints (LEB128), length-prefixed UTF-8 strings
//! and one-byte flags: id, name, version, next column id, next index id,
//! the columns (id, name, type, flags `nullable=1 hidden=2 default=4`,
//! default SQL text), the primary index, then the secondary indexes (id,
//! name, unique flag, column ids). A type is a tag byte plus its modifiers.

use meridian_error::{Error, Result};
use meridian_storage::{keycode, KeyRange, ScanDirection};
use meridian_txn::{LockStrength, Transaction};

use crate::types::DataType;

/// The first table id handed out; smaller ids are reserved.
pub(crate) const FIRST_TABLE_ID: u64 = 100;
/// The index id of every table's primary index.
pub(crate) const PRIMARY_INDEX_ID: u32 = 1;
/// The name of the hidden row id column of tables without a primary key.
pub(crate) const ROWID: &str = "rowid";

/// A column of a table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ColumnDesc {
    /// Stable id, used in row values and index descriptors.
    pub id: u32,
    /// The column name.
    pub name: String,
    /// Its type.
    pub ty: DataType,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The `DEFAULT` expression as SQL text.
    pub default: Option<String>,
    /// Hidden columns (the row id) are not part of `*`.
    pub hidden: bool,
}

/// An index: the primary index or a secondary one.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct IndexDesc {
    /// Index id, unique within the table (1 = primary).
    pub id: u32,
    /// The index (constraint) name.
    pub name: String,
    /// Positions of the key columns in the table's column list.
    pub columns: Vec<usize>,
    /// Whether the key is unique.
    pub unique: bool,
}

/// A table descriptor.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TableDesc {
    /// The table id, the first part of every key of the table.
    pub id: u64,
    /// The table name.
    pub name: String,
    /// Bumped by every schema change.
    pub version: u64,
    /// The columns, in declaration order.
    pub columns: Vec<ColumnDesc>,
    /// The primary index (the row's key).
    pub primary: IndexDesc,
    /// Secondary indexes.
    pub indexes: Vec<IndexDesc>,
    /// The next column id to assign.
    pub next_column_id: u32,
    /// The next index id to assign.
    pub next_index_id: u32,
}

impl TableDesc {
    /// The position of the column named `name`.
    pub(crate) fn column_position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The position of the column with id `id`.
    pub(crate) fn position_of_id(&self, id: u32) -> Option<usize> {
        self.columns.iter().position(|c| c.id == id)
    }

    /// The index with id `id`.
    pub(crate) fn index(&self, id: u32) -> Option<&IndexDesc> {
        if id == PRIMARY_INDEX_ID {
            Some(&self.primary)
        } else {
            self.indexes.iter().find(|i| i.id == id)
        }
    }

    /// Whether the primary key is the hidden row id.
    pub(crate) fn has_hidden_rowid(&self) -> bool {
        self.primary.columns.len() == 1 && self.columns[self.primary.columns[0]].hidden
    }

    /// Whether column `pos` is part of the primary key.
    pub(crate) fn is_key_column(&self, pos: usize) -> bool {
        self.primary.columns.contains(&pos)
    }
}

/// `/0/1/<name>`: where a table's descriptor lives.
pub(crate) fn table_key(name: &str) -> Vec<u8> {
    let mut key = catalog_prefix(1);
    keycode::encode_value_into(
        &mut key,
        &keycode::KeyValue::String(name.to_string()),
        keycode::Direction::Asc,
    );
    key
}

/// `/0/2/<name>`: where an index name is registered.
pub(crate) fn index_name_key(name: &str) -> Vec<u8> {
    let mut key = catalog_prefix(2);
    keycode::encode_value_into(
        &mut key,
        &keycode::KeyValue::String(name.to_string()),
        keycode::Direction::Asc,
    );
    key
}

/// `/0/3`: the table id sequence.
fn sequence_key() -> Vec<u8> {
    catalog_prefix(3)
}

/// `/0/<kind>`.
fn catalog_prefix(kind: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    keycode::encode_u64(&mut key, 0);
    keycode::encode_u64(&mut key, kind);
    key
}

/// `/<table>`: the prefix of all of a table's keys.
pub(crate) fn table_prefix(table: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(8);
    keycode::encode_u64(&mut key, table);
    key
}

/// `/<table>/<index>`: the prefix of an index's keys.
pub(crate) fn index_prefix(table: u64, index: u32) -> Vec<u8> {
    let mut key = table_prefix(table);
    keycode::encode_u64(&mut key, u64::from(index));
    key
}

/// Reads a table descriptor, locking its key with `lock`.
pub(crate) async fn load_table<T: Transaction>(
    txn: &mut T,
    name: &str,
    lock: LockStrength,
) -> Result<Option<TableDesc>> {
    match txn.get(&table_key(name), lock).await? {
        Some(bytes) => decode_table(&bytes).map(Some),
        None => Ok(None),
    }
}

/// Writes a table descriptor.
pub(crate) async fn store_table<T: Transaction>(txn: &mut T, table: &TableDesc) -> Result<()> {
    txn.put(table_key(&table.name), encode_table(table)).await
}

/// Which table owns the index named `name`, if any.
pub(crate) async fn index_owner<T: Transaction>(
    txn: &mut T,
    name: &str,
    lock: LockStrength,
) -> Result<Option<String>> {
    match txn.get(&index_name_key(name), lock).await? {
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::Corruption("index name entry is not UTF-8".into())),
        None => Ok(None),
    }
}

/// Hands out a new table id.
pub(crate) async fn allocate_table_id<T: Transaction>(txn: &mut T) -> Result<u64> {
    let key = sequence_key();
    let next = match txn.get(&key, LockStrength::Exclusive).await? {
        Some(bytes) => u64::from_be_bytes(
            bytes
                .try_into()
                .map_err(|_| Error::Corruption("table id sequence is not 8 bytes".into()))?,
        ),
        None => FIRST_TABLE_ID,
    };
    txn.put(key, (next + 1).to_be_bytes().to_vec()).await?;
    Ok(next)
}

/// Every table descriptor, in name order.
pub(crate) async fn list_tables<T: Transaction>(txn: &mut T) -> Result<Vec<TableDesc>> {
    let pairs = txn
        .scan(
            KeyRange::prefix(&catalog_prefix(1)),
            ScanDirection::Forward,
            None,
            LockStrength::Shared,
        )
        .await?;
    pairs.iter().map(|(_, v)| decode_table(v)).collect()
}

/// Encodes a descriptor (format in the module docs).
pub(crate) fn encode_table(t: &TableDesc) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(128));
    w.u8(1);
    w.varint(t.id);
    w.string(&t.name);
    w.varint(t.version);
    w.varint(u64::from(t.next_column_id));
    w.varint(u64::from(t.next_index_id));
    w.varint(t.columns.len() as u64);
    for c in &t.columns {
        w.varint(u64::from(c.id));
        w.string(&c.name);
        w.data_type(&c.ty);
        let flags =
            u8::from(c.nullable) | u8::from(c.hidden) << 1 | u8::from(c.default.is_some()) << 2;
        w.u8(flags);
        if let Some(d) = &c.default {
            w.string(d);
        }
    }
    w.index(&t.primary, &t.columns);
    w.varint(t.indexes.len() as u64);
    for i in &t.indexes {
        w.index(i, &t.columns);
    }
    w.0
}

/// Decodes a descriptor.
pub(crate) fn decode_table(bytes: &[u8]) -> Result<TableDesc> {
    let mut r = Reader(bytes);
    if r.u8()? != 1 {
        return Err(Error::Corruption("unknown table descriptor format".into()));
    }
    let id = r.varint()?;
    let name = r.string()?;
    let version = r.varint()?;
    let next_column_id = r.varint()? as u32;
    let next_index_id = r.varint()? as u32;
    let n = r.varint()? as usize;
    let mut columns = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.varint()? as u32;
        let name = r.string()?;
        let ty = r.data_type()?;
        let flags = r.u8()?;
        let default = if flags & 4 != 0 {
            Some(r.string()?)
        } else {
            None
        };
        columns.push(ColumnDesc {
            id,
            name,
            ty,
            nullable: flags & 1 != 0,
            default,
            hidden: flags & 2 != 0,
        });
    }
    let primary = r.index(&columns)?;
    let n = r.varint()? as usize;
    let mut indexes = Vec::with_capacity(n);
    for _ in 0..n {
        indexes.push(r.index(&columns)?);
    }
    Ok(TableDesc {
        id,
        name,
        version,
        columns,
        primary,
        indexes,
        next_column_id,
        next_index_id,
    })
}

/// Appends the pieces of the binary formats (descriptors and row values).
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    /// One byte.
    pub(crate) fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    /// An unsigned LEB128 varint.
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    /// A zigzag-encoded signed varint.
    pub(crate) fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Length-prefixed bytes.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn string(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// A type: tag byte and modifiers.
    fn data_type(&mut self, ty: &DataType) {
        let opt = |w: &mut Writer, v: Option<u32>| match v {
            Some(v) => {
                w.u8(1);
                w.varint(u64::from(v));
            }
            None => w.u8(0),
        };
        match ty {
            DataType::Bool => self.u8(1),
            DataType::Int2 => self.u8(2),
            DataType::Int4 => self.u8(3),
            DataType::Int8 => self.u8(4),
            DataType::Float4 => self.u8(5),
            DataType::Float8 => self.u8(6),
            DataType::Numeric { precision, scale } => {
                self.u8(7);
                opt(self, *precision);
                opt(self, *scale);
            }
            DataType::Text => self.u8(8),
            DataType::Varchar(n) => {
                self.u8(9);
                opt(self, *n);
            }
            DataType::Char(n) => {
                self.u8(10);
                self.varint(u64::from(*n));
            }
            DataType::Bytea => self.u8(11),
            DataType::Date => self.u8(12),
            DataType::Timestamp => self.u8(13),
            DataType::TimestampTz => self.u8(14),
            DataType::Interval => self.u8(15),
            DataType::Unknown => self.u8(16),
        }
    }

    /// An index: id, name, unique flag, column ids.
    fn index(&mut self, index: &IndexDesc, columns: &[ColumnDesc]) {
        self.varint(u64::from(index.id));
        self.string(&index.name);
        self.u8(u8::from(index.unique));
        self.varint(index.columns.len() as u64);
        for &pos in &index.columns {
            self.varint(u64::from(columns[pos].id));
        }
    }
}

/// Reads what [`Writer`] wrote; malformed input is [`Error::Corruption`].
pub(crate) struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    /// Whether everything was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8> {
        let (&b, rest) = self.0.split_first().ok_or_else(truncated)?;
        self.0 = rest;
        Ok(b)
    }

    /// An unsigned LEB128 varint.
    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::Corruption("varint too long".into()))
    }

    /// A zigzag-encoded signed varint.
    pub(crate) fn zigzag(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// `n` raw bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(truncated());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// Length-prefixed bytes.
    pub(crate) fn bytes(&mut self) -> Result<&[u8]> {
        let n = self.varint()? as usize;
        self.take(n)
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| Error::Corruption("string is not UTF-8".into()))
    }

    /// A type.
    fn data_type(&mut self) -> Result<DataType> {
        let opt = |r: &mut Reader| -> Result<Option<u32>> {
            Ok(if r.u8()? == 1 {
                Some(r.varint()? as u32)
            } else {
                None
            })
        };
        Ok(match self.u8()? {
            1 => DataType::Bool,
            2 => DataType::Int2,
            3 => DataType::Int4,
            4 => DataType::Int8,
            5 => DataType::Float4,
            6 => DataType::Float8,
            7 => DataType::Numeric {
                precision: opt(self)?,
                scale: opt(self)?,
            },
            8 => DataType::Text,
            9 => DataType::Varchar(opt(self)?),
            10 => DataType::Char(self.varint()? as u32),
            11 => DataType::Bytea,
            12 => DataType::Date,
            13 => DataType::Timestamp,
            14 => DataType::TimestampTz,
            15 => DataType::Interval,
            16 => DataType::Unknown,
            t => return Err(Error::Corruption(format!("unknown type tag {t}"))),
        })
    }

    /// An index; column ids become positions.
    fn index(&mut self, columns: &[ColumnDesc]) -> Result<IndexDesc> {
        let id = self.varint()? as u32;
        let name = self.string()?;
        let unique = self.u8()? != 0;
        let n = self.varint()? as usize;
        let mut cols = Vec::with_capacity(n);
        for _ in 0..n {
            let cid = self.varint()? as u32;
            let pos = columns.iter().position(|c| c.id == cid).ok_or_else(|| {
                Error::Corruption(format!("index {name} names unknown column {cid}"))
            })?;
            cols.push(pos);
        }
        Ok(IndexDesc {
            id,
            name,
            columns: cols,
            unique,
        })
    }
}

/// The error for reading past the end.
fn truncated() -> Error {
    Error::Corruption("encoded value is truncated".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> TableDesc {
        TableDesc {
            id: 104,
            name: "orders".into(),
            version: 3,
            columns: vec![
                ColumnDesc {
                    id: 1,
                    name: "id".into(),
                    ty: DataType::Int8,
                    nullable: false,
                    default: None,
                    hidden: false,
                },
                ColumnDesc {
                    id: 2,
                    name: "price".into(),
                    ty: DataType::Numeric {
                        precision: Some(8),
                        scale: Some(2),
                    },
                    nullable: true,
                    default: Some("0".into()),
                    hidden: false,
                },
                ColumnDesc {
                    id: 3,
                    name: "note".into(),
                    ty: DataType::Varchar(Some(20)),
                    nullable: true,
                    default: None,
                    hidden: false,
                },
            ],
            primary: IndexDesc {
                id: 1,
                name: "orders_pkey".into(),
                columns: vec![0],
                unique: true,
            },
            indexes: vec![IndexDesc {
                id: 2,
                name: "orders_note_idx".into(),
                columns: vec![2, 1],
                unique: false,
            }],
            next_column_id: 4,
            next_index_id: 3,
        }
    }

    #[test]
    fn descriptors_round_trip() {
        let t = sample();
        assert_eq!(decode_table(&encode_table(&t)).unwrap(), t);
    }

    #[test]
    fn truncated_descriptors_are_corruption() {
        let bytes = encode_table(&sample());
        for cut in [1, 5, bytes.len() - 1] {
            assert!(matches!(
                decode_table(&bytes[..cut]),
                Err(Error::Corruption(_))
            ));
        }
    }

    #[test]
    fn catalog_keys_sort_before_tables() {
        assert!(table_key("zzz") < table_prefix(FIRST_TABLE_ID));
        assert!(table_key("a") < table_key("b"));
        assert!(index_prefix(100, 1) < index_prefix(100, 2));
    }

    #[test]
    fn varints_round_trip() {
        let mut w = Writer(Vec::new());
        for v in [0i64, 1, -1, 300, i64::MIN, i64::MAX] {
            w.zigzag(v);
        }
        let mut r = Reader(&w.0);
        for v in [0i64, 1, -1, 300, i64::MIN, i64::MAX] {
            assert_eq!(r.zigzag().unwrap(), v);
        }
        assert!(r.is_empty());
    }
}
