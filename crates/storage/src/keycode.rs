//! Order-preserving key encoding.
//!
//! Meridian keeps all data in one ordered byte keyspace (DESIGN.md, "Data model and keys"):
//! a row lives at `/<table_id>/<index_id>/<key columns>`. This module turns typed SQL values
//! into bytes so that comparing keys with `memcmp` gives the same answer as comparing the
//! values the way SQL does. That is what lets composite primary keys sort correctly, lets a
//! range of rows be a range of keys, and makes a scan by key prefix one contiguous span.
//!
//! # Invariants
//!
//! For tuples `a`, `b` whose columns have the same types and [`Direction`]s:
//!
//! 1. **Order.** `encode(a) < encode(b)` exactly when `a < b` in SQL order: column by column,
//!    NULL after every non-null value (PostgreSQL's default `ASC NULLS LAST`; a `DESC` column
//!    reverses everything, so it is `DESC NULLS FIRST`, PostgreSQL's default too), floats with
//!    `-0.0 == 0.0` and NaN above `+inf`, decimals numerically, strings by UTF-8 bytes (which
//!    is code point order, PostgreSQL's `C` collation), and a tuple before its extensions.
//! 2. **Prefix.** `encode(a[..k])` is a byte prefix of `encode(a)`. So the tuples extending a
//!    prefix `p` are exactly the keys in `[encode(p), prefix_end(encode(p)))`, one span.
//! 3. **Round trip, canonical form.** `decode(encode(v)) == v.normalized()`, and decoding
//!    rejects every byte string that is not the encoding of some value. Equal values have equal
//!    keys and every key has one meaning; garbage is an [`Error::Corruption`], never a panic.
//!
//! # Format
//!
//! A key is the concatenation of its values' encodings, with nothing between them. A value is
//! one type tag byte, then a body:
//!
//! | tag    | type        | body                                                             |
//! |--------|-------------|------------------------------------------------------------------|
//! | `0x10` | `Bool`      | `0x00` false, `0x01` true                                        |
//! | `0x20` | `Int`       | 8 bytes big-endian, sign bit flipped                             |
//! | `0x30` | `Float`     | 8 bytes big-endian IEEE 754, transformed (below)                 |
//! | `0x40` | `Decimal`   | class, exponent, base-100 digits (below)                         |
//! | `0x50` | `String`    | UTF-8 bytes, escaped and terminated (below)                      |
//! | `0x60` | `Bytes`     | the bytes, escaped and terminated (below)                        |
//! | `0x70` | `Timestamp` | 8 bytes big-endian, sign bit flipped (microseconds since epoch)  |
//! | `0x80` | `Date`      | 4 bytes big-endian, sign bit flipped (days since epoch)          |
//! | `0xF0` | `Null`      | none                                                             |
//!
//! - **Integers** (`Int`, `Timestamp`, `Date`): flipping the sign bit maps `i64::MIN..=MAX`
//!   onto `0..=u64::MAX` in order, and big-endian bytes of an unsigned number compare like the
//!   number. Fixed width: `Int(1)` is `20 80 00 00 00 00 00 00 01`. Every body is valid.
//! - **Floats**: `0.0` stands for `-0.0` and one NaN (`0x7FF8_0000_0000_0000`) for every NaN.
//!   Then a non-negative float has its sign bit set and a negative one has all bits inverted.
//!   IEEE 754 bit patterns of non-negative floats already sort like their values; setting the
//!   sign bit puts them above all negatives, and inverting a negative reverses its magnitude
//!   order. The positive NaN pattern is above `+inf`'s, so NaN sorts last. `1.0` is
//!   `30 BF F0 00 00 00 00 00 00`. Decoding rejects `-0.0` and other NaN patterns.
//! - **Strings and bytes**: each `0x00` byte becomes `00 FF`, other bytes stay, and `00 01`
//!   ends the value. Read as symbols, the end (`00 01`) sorts below a zero byte (`00 FF`),
//!   which sorts below every other byte, and no symbol's code is a prefix of another's; so the
//!   bytes compare like the strings with "end of string" as the smallest symbol, which is plain
//!   lexicographic order: `"a" < "a\0" < "ab"`. The first `00 01` is always the end, so the
//!   value is self-delimiting, and `("a", "b")` (`61 00 01 …`) sorts before `("ab", …)`
//!   (`61 62 …`). Decoding rejects a `0x00` followed by anything but `FF` or `01`, and
//!   invalid UTF-8 in a `String`.
//! - **Decimals** are encoded by numeric value, ignoring scale: `1.5` and `1.50` have one
//!   encoding and decode as `1.5` (see [`KeyValue::normalized`]); `-0` is `0`. The body's first
//!   byte is the class: `01` negative, `02` zero (nothing follows), `03` positive. A nonzero
//!   magnitude is written `0.D1 D2 … Dn × 100^E` with base-100 digits `Di` in `0..=99`, `D1`
//!   and `Dn` nonzero (this form is unique). Then comes `E` as a sign-flipped byte
//!   (`0x80 + E`; `rust_decimal` values need `E` in `-13..=15`), then one byte per digit:
//!   `2·Di + 1` for all but the last, `2·Dn` for the last, so the even byte ends the value.
//!   Positive values: a larger `E` is a larger number (digits are normalized), at equal `E`
//!   the digits compare lexicographically, and where one digit string extends the other the
//!   shorter ends with an even byte below the longer's odd byte, and is indeed smaller. For
//!   negative numbers the exponent and digit bytes are inverted, reversing that order (the
//!   bytes are prefix-free, see below). `1.5` = `0.01 50 × 100^1` is `40 03 81 03 64`;
//!   `-1.5` is `40 01 7E FC 9B`; `10` is `40 03 81 14`, above `9.99` (`40 03 81 13 C6`).
//! - **Null** is the tag alone; its tag is the largest, so NULL sorts last.
//!
//! **Descending** columns ([`Direction::Desc`]) use the ascending encoding with every byte,
//! tag included, inverted (`x ^ 0xFF`); the decoder inverts each byte it reads back. `Desc`
//! `"a"` is `AF 9E FF FE`: the terminator `00 01` became `FF FE`, which the decoder reads back
//! as `00 01`.
//!
//! # Why the order holds for tuples, in both directions
//!
//! Each value's encoding is **prefix-free**: no valid encoding is a proper prefix of another
//! of the same column (the tag fixes the type, fixed-width bodies have one length, strings end
//! at their first `00 01`, decimals at their first digit byte of the right parity). When two
//! byte strings are not prefixes of one another they differ at some byte, and that first
//! difference decides the comparison of anything appended after them. So comparing two
//! concatenations compares the first differing values and nothing else, which is the
//! lexicographic tuple order. For the same reason inverting every byte of a value reverses its
//! order exactly (the first differing byte is inverted, so its comparison flips), which is
//! what a `DESC` column needs, NULL placement included. A shorter tuple is a byte prefix of its
//! extensions and so sorts first, as SQL's row comparison does.
//!
//! # Ids
//!
//! Table and index ids ([`encode_u64`]) use a compact, order-preserving unsigned varint:
//! `v < 0xF8` is the single byte `v`; otherwise the byte `0xF7 + n` followed by the `n`
//! (1..=8) big-endian bytes of `v` without leading zeros. More bytes means a larger number, and
//! equal lengths compare big-endian; decoding rejects non-minimal forms. Ids are not tagged:
//! the caller knows the key layout `/<table_id>/<index_id>/<values>`.
//!
//! # Left out
//!
//! - Comparison across types: a column holds one type. Values of different types sort by
//!   their tags only (an `Int` is not compared numerically with a `Decimal`).
//! - Collations: strings sort by bytes, not by locale.
//! - Preserving what the order ignores: decimal scale, the sign of `-0.0`, NaN payloads.
//! - Compact (varint) integers in values: fixed width is simpler, every body is valid, and
//!   the ids that start every key are already compact.
//! - `NULLS FIRST` for ascending columns and `NULLS LAST` for descending ones.
//! - Other SQL types (time of day, interval, UUID, arrays); they get new tags when needed.

use meridian_error::{Error, Result};
use rust_decimal::Decimal;

/// A typed value in a key column. Decoding returns values in [`KeyValue::normalized`] form.
///
/// Equality is structural and reflexive: floats compare by bit pattern (so `NaN == NaN` and
/// `0.0 != -0.0`), decimals numerically as `rust_decimal` does (so `1.5 == 1.50`).
#[derive(Clone, Debug)]
pub enum KeyValue {
    /// SQL NULL. Sorts after every non-null value of an ascending column.
    Null,
    /// A boolean; `false` sorts before `true`.
    Bool(bool),
    /// A 64-bit signed integer (`SMALLINT`, `INT`, `BIGINT`).
    Int(i64),
    /// A 64-bit float; `-0.0` equals `0.0`, and NaN sorts above `+inf`.
    Float(f64),
    /// An exact decimal, ordered numerically; its scale is not kept in the key.
    Decimal(Decimal),
    /// A UTF-8 string, ordered by its bytes.
    String(String),
    /// A byte string (`BYTEA`), ordered lexicographically.
    Bytes(Vec<u8>),
    /// Microseconds since the Unix epoch, UTC; negative is before 1970.
    Timestamp(i64),
    /// Days since the Unix epoch; negative is before 1970.
    Date(i32),
}

impl KeyValue {
    /// The value that decoding this value's encoding returns: `-0.0` becomes `0.0`, every NaN
    /// becomes one canonical NaN, and decimals lose trailing zeros (`1.50` becomes `1.5`,
    /// `-0` becomes `0`). Other values are unchanged.
    pub fn normalized(self) -> KeyValue {
        match self {
            KeyValue::Float(f) => KeyValue::Float(normalize_float(f)),
            KeyValue::Decimal(d) => KeyValue::Decimal(d.normalize()),
            other => other,
        }
    }
}

impl PartialEq for KeyValue {
    fn eq(&self, other: &Self) -> bool {
        use KeyValue::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Decimal(a), Decimal(b)) => a == b,
            (String(a), String(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for KeyValue {}

impl From<bool> for KeyValue {
    fn from(v: bool) -> Self {
        KeyValue::Bool(v)
    }
}

impl From<i64> for KeyValue {
    fn from(v: i64) -> Self {
        KeyValue::Int(v)
    }
}

impl From<f64> for KeyValue {
    fn from(v: f64) -> Self {
        KeyValue::Float(v)
    }
}

impl From<Decimal> for KeyValue {
    fn from(v: Decimal) -> Self {
        KeyValue::Decimal(v)
    }
}

impl From<String> for KeyValue {
    fn from(v: String) -> Self {
        KeyValue::String(v)
    }
}

impl From<&str> for KeyValue {
    fn from(v: &str) -> Self {
        KeyValue::String(v.to_string())
    }
}

impl From<Vec<u8>> for KeyValue {
    fn from(v: Vec<u8>) -> Self {
        KeyValue::Bytes(v)
    }
}

/// The sort direction of one key column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ascending, NULLs last (`ASC NULLS LAST`).
    #[default]
    Asc,
    /// Descending, NULLs first (`DESC NULLS FIRST`): every byte of the ascending encoding
    /// inverted.
    Desc,
}

impl Direction {
    /// The byte every encoded byte is XORed with.
    fn mask(self) -> u8 {
        match self {
            Direction::Asc => 0x00,
            Direction::Desc => 0xFF,
        }
    }
}

const TAG_BOOL: u8 = 0x10;
const TAG_INT: u8 = 0x20;
const TAG_FLOAT: u8 = 0x30;
const TAG_DECIMAL: u8 = 0x40;
const TAG_STRING: u8 = 0x50;
const TAG_BYTES: u8 = 0x60;
const TAG_TIMESTAMP: u8 = 0x70;
const TAG_DATE: u8 = 0x80;
const TAG_NULL: u8 = 0xF0;

const DECIMAL_NEGATIVE: u8 = 0x01;
const DECIMAL_ZERO: u8 = 0x02;
const DECIMAL_POSITIVE: u8 = 0x03;

/// The one NaN bit pattern keys hold (the positive quiet NaN).
const CANONICAL_NAN: u64 = 0x7FF8_0000_0000_0000;
const SIGN_BIT: u64 = 1 << 63;

/// The largest value of a single-byte [`encode_u64`].
const UVARINT_MAX_INLINE: u8 = 0xF7;

/// The most base-100 digits a `rust_decimal` value needs: 29 decimal digits, plus one
/// leading zero to align the decimal point on a pair boundary, is 15 pairs.
const MAX_DECIMAL_DIGITS: usize = 15;
/// The largest scale `rust_decimal` allows.
const MAX_DECIMAL_SCALE: u32 = 28;

/// Encodes `values`, all ascending, as one key.
pub fn encode_key(values: &[KeyValue]) -> Vec<u8> {
    let mut buf = Vec::new();
    for value in values {
        encode_value_into(&mut buf, value, Direction::Asc);
    }
    buf
}

/// Encodes `values` as one key, value `i` in direction `dirs[i]`. `values` may be shorter than
/// `dirs` (a key prefix, for a span); longer is [`Error::InvalidInput`].
pub fn encode_key_with(values: &[KeyValue], dirs: &[Direction]) -> Result<Vec<u8>> {
    if values.len() > dirs.len() {
        return Err(Error::InvalidInput(format!(
            "key has {} values but only {} column directions",
            values.len(),
            dirs.len()
        )));
    }
    let mut buf = Vec::new();
    for (value, &dir) in values.iter().zip(dirs) {
        encode_value_into(&mut buf, value, dir);
    }
    Ok(buf)
}

/// Appends the encoding of one value, in direction `dir`, to `buf`.
pub fn encode_value_into(buf: &mut Vec<u8>, value: &KeyValue, dir: Direction) {
    let mut w = Writer {
        buf,
        mask: dir.mask(),
    };
    match value {
        KeyValue::Null => w.push(TAG_NULL),
        KeyValue::Bool(b) => {
            w.push(TAG_BOOL);
            w.push(u8::from(*b));
        }
        KeyValue::Int(i) => {
            w.push(TAG_INT);
            w.extend(&((*i as u64) ^ SIGN_BIT).to_be_bytes());
        }
        KeyValue::Float(f) => {
            w.push(TAG_FLOAT);
            let bits = normalize_float(*f).to_bits();
            let ordered = if bits & SIGN_BIT == 0 {
                bits | SIGN_BIT
            } else {
                !bits
            };
            w.extend(&ordered.to_be_bytes());
        }
        KeyValue::Decimal(d) => {
            w.push(TAG_DECIMAL);
            encode_decimal(&mut w, *d);
        }
        KeyValue::String(s) => {
            w.push(TAG_STRING);
            encode_escaped(&mut w, s.as_bytes());
        }
        KeyValue::Bytes(b) => {
            w.push(TAG_BYTES);
            encode_escaped(&mut w, b);
        }
        KeyValue::Timestamp(t) => {
            w.push(TAG_TIMESTAMP);
            w.extend(&((*t as u64) ^ SIGN_BIT).to_be_bytes());
        }
        KeyValue::Date(d) => {
            w.push(TAG_DATE);
            w.extend(&((*d as u32) ^ (1 << 31)).to_be_bytes());
        }
    }
}

/// Decodes a key whose values are all ascending. Fails with [`Error::Corruption`] unless
/// `bytes` is exactly the encoding of some values.
pub fn decode_key(bytes: &[u8]) -> Result<Vec<KeyValue>> {
    let mut pos = 0;
    let mut values = Vec::new();
    while pos < bytes.len() {
        values.push(decode_at(bytes, &mut pos, Direction::Asc)?);
    }
    Ok(values)
}

/// Decodes a key whose value `i` has direction `dirs[i]`. The key may hold fewer values than
/// `dirs` (a key prefix); bytes left after `dirs.len()` values are [`Error::Corruption`].
pub fn decode_key_with(bytes: &[u8], dirs: &[Direction]) -> Result<Vec<KeyValue>> {
    let mut pos = 0;
    let mut values = Vec::new();
    for &dir in dirs {
        if pos == bytes.len() {
            break;
        }
        values.push(decode_at(bytes, &mut pos, dir)?);
    }
    if pos < bytes.len() {
        return Err(corrupt(
            pos,
            format!(
                "{} trailing bytes after the last of {} key columns",
                bytes.len() - pos,
                dirs.len()
            ),
        ));
    }
    Ok(values)
}

/// Decodes one value in direction `dir` from the front of `input` and advances `input` past
/// it. Error positions count from the start of `input`.
pub fn decode_value(input: &mut &[u8], dir: Direction) -> Result<KeyValue> {
    let mut pos = 0;
    let value = decode_at(input, &mut pos, dir)?;
    *input = &input[pos..];
    Ok(value)
}

/// Appends `v` as an order-preserving unsigned varint (for table and index ids): one byte
/// for `v < 0xF8`, else `0xF7 + n` and the `n` minimal big-endian bytes of `v`.
pub fn encode_u64(buf: &mut Vec<u8>, v: u64) {
    if v <= u64::from(UVARINT_MAX_INLINE) {
        buf.push(v as u8);
        return;
    }
    let bytes = v.to_be_bytes();
    let n = 8 - (v.leading_zeros() / 8) as usize;
    buf.push(UVARINT_MAX_INLINE + n as u8);
    buf.extend_from_slice(&bytes[8 - n..]);
}

/// Decodes an [`encode_u64`] varint from the front of `input` and advances `input` past it.
/// Truncated or non-minimal encodings are [`Error::Corruption`].
pub fn decode_u64(input: &mut &[u8]) -> Result<u64> {
    let (&first, rest) = input
        .split_first()
        .ok_or_else(|| corrupt(0, "expected an id, found the end of the key"))?;
    if first <= UVARINT_MAX_INLINE {
        *input = rest;
        return Ok(u64::from(first));
    }
    let n = usize::from(first - UVARINT_MAX_INLINE);
    if rest.len() < n {
        return Err(corrupt(
            0,
            format!("id needs {n} more bytes, only {} left", rest.len()),
        ));
    }
    let mut bytes = [0u8; 8];
    bytes[8 - n..].copy_from_slice(&rest[..n]);
    let v = u64::from_be_bytes(bytes);
    let minimal = if n == 1 {
        v > u64::from(UVARINT_MAX_INLINE)
    } else {
        rest[0] != 0
    };
    if !minimal {
        return Err(corrupt(0, format!("id {v} is not minimally encoded")));
    }
    *input = &rest[n..];
    Ok(v)
}

/// The smallest key greater than every key that starts with `prefix`: the prefix without its
/// trailing `0xFF` bytes, with its last byte incremented. `None` when `prefix` is empty or all
/// `0xFF`, meaning no such key exists and the span is unbounded above.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    crate::prefix_successor(prefix)
}

/// Appends bytes XORed with the direction mask.
struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    mask: u8,
}

impl Writer<'_> {
    fn push(&mut self, b: u8) {
        self.buf.push(b ^ self.mask);
    }

    fn extend(&mut self, bytes: &[u8]) {
        let mask = self.mask;
        self.buf.extend(bytes.iter().map(|b| b ^ mask));
    }
}

fn normalize_float(f: f64) -> f64 {
    if f.is_nan() {
        f64::from_bits(CANONICAL_NAN)
    } else if f == 0.0 {
        0.0
    } else {
        f
    }
}

/// Writes `bytes` with `00` escaped as `00 FF`, then the terminator `00 01`.
fn encode_escaped(w: &mut Writer<'_>, bytes: &[u8]) {
    for &b in bytes {
        w.push(b);
        if b == 0x00 {
            w.push(0xFF);
        }
    }
    w.push(0x00);
    w.push(0x01);
}

/// Writes a decimal's class, exponent and base-100 digits (see the module docs).
fn encode_decimal(w: &mut Writer<'_>, d: Decimal) {
    if d.is_zero() {
        w.push(DECIMAL_ZERO);
        return;
    }
    let negative = d.is_sign_negative();
    let d = d.normalize();

    // Decimal digits of the mantissa, most significant first.
    let mut mantissa = d.mantissa().unsigned_abs();
    let mut reversed = [0u8; 40];
    let mut k = 0;
    while mantissa > 0 {
        reversed[k] = (mantissa % 10) as u8;
        mantissa /= 10;
        k += 1;
    }
    // |d| = 0.<digits> × 10^e10. Align the point on a pair boundary: an odd e10 gets a
    // leading zero digit and rounds up to the next even exponent.
    let e10 = k as i32 - d.scale() as i32;
    let pad = e10.rem_euclid(2) as usize;
    let e100 = (e10 + pad as i32) / 2;
    let padded = |i: usize| -> u8 {
        // Digit i of the padded digit string, zeros past the end.
        if i < pad || i >= pad + k {
            0
        } else {
            reversed[k - 1 - (i - pad)]
        }
    };
    let mut digits = [0u8; MAX_DECIMAL_DIGITS + 1];
    let mut n = (pad + k).div_ceil(2);
    for (j, digit) in digits.iter_mut().enumerate().take(n) {
        *digit = padded(2 * j) * 10 + padded(2 * j + 1);
    }
    while digits[n - 1] == 0 {
        n -= 1; // A scale-0 mantissa like 100 has trailing zero pairs.
    }

    let invert = if negative { 0xFF } else { 0x00 };
    w.push(if negative {
        DECIMAL_NEGATIVE
    } else {
        DECIMAL_POSITIVE
    });
    w.push((0x80 + e100) as u8 ^ invert);
    for (j, &digit) in digits[..n].iter().enumerate() {
        let byte = if j + 1 == n { 2 * digit } else { 2 * digit + 1 };
        w.push(byte ^ invert);
    }
}

fn corrupt(pos: usize, msg: impl std::fmt::Display) -> Error {
    Error::Corruption(format!("invalid key encoding at byte {pos}: {msg}"))
}

/// Reads bytes of one value, undoing the direction mask, and tracks the position for errors.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: &'a mut usize,
    mask: u8,
}

impl Reader<'_> {
    fn byte(&mut self, what: &str) -> Result<u8> {
        let b = *self
            .bytes
            .get(*self.pos)
            .ok_or_else(|| corrupt(*self.pos, format!("key ends inside {what}")))?;
        *self.pos += 1;
        Ok(b ^ self.mask)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte(what)?;
        }
        Ok(out)
    }

    /// Reads an escaped, terminated byte string.
    fn escaped(&mut self, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            match self.byte(what)? {
                0x00 => match self.byte(what)? {
                    0xFF => out.push(0x00),
                    0x01 => return Ok(out),
                    other => {
                        return Err(corrupt(
                            *self.pos - 1,
                            format!("{what}: byte 0x00 followed by {other:#04x}, not 0xff or 0x01"),
                        ))
                    }
                },
                b => out.push(b),
            }
        }
    }
}

fn decode_at(bytes: &[u8], pos: &mut usize, dir: Direction) -> Result<KeyValue> {
    let start = *pos;
    let mut r = Reader {
        bytes,
        pos,
        mask: dir.mask(),
    };
    let tag = r.byte("a value")?;
    Ok(match tag {
        TAG_NULL => KeyValue::Null,
        TAG_BOOL => match r.byte("a bool")? {
            0 => KeyValue::Bool(false),
            1 => KeyValue::Bool(true),
            b => {
                return Err(corrupt(
                    start + 1,
                    format!("bool byte {b:#04x} is not 0 or 1"),
                ))
            }
        },
        TAG_INT => KeyValue::Int((u64::from_be_bytes(r.array("an int")?) ^ SIGN_BIT) as i64),
        TAG_TIMESTAMP => {
            KeyValue::Timestamp((u64::from_be_bytes(r.array("a timestamp")?) ^ SIGN_BIT) as i64)
        }
        TAG_DATE => KeyValue::Date((u32::from_be_bytes(r.array("a date")?) ^ (1 << 31)) as i32),
        TAG_FLOAT => {
            let ordered = u64::from_be_bytes(r.array("a float")?);
            let bits = if ordered & SIGN_BIT != 0 {
                ordered ^ SIGN_BIT
            } else {
                !ordered
            };
            let f = f64::from_bits(bits);
            if f.is_nan() && bits != CANONICAL_NAN {
                return Err(corrupt(start, format!("non-canonical NaN {bits:#018x}")));
            }
            if f == 0.0 && f.is_sign_negative() {
                return Err(corrupt(start, "-0.0 is encoded as 0.0"));
            }
            KeyValue::Float(f)
        }
        TAG_DECIMAL => KeyValue::Decimal(decode_decimal(&mut r, start)?),
        TAG_STRING => {
            let raw = r.escaped("a string")?;
            KeyValue::String(
                String::from_utf8(raw)
                    .map_err(|e| corrupt(start, format!("string is not UTF-8: {e}")))?,
            )
        }
        TAG_BYTES => KeyValue::Bytes(r.escaped("a byte string")?),
        other => {
            let hint = if is_tag(other ^ 0xFF) {
                " (a value in the other direction?)"
            } else {
                ""
            };
            return Err(corrupt(
                start,
                format!("unknown type tag {other:#04x}{hint}"),
            ));
        }
    })
}

fn is_tag(b: u8) -> bool {
    matches!(
        b,
        TAG_NULL
            | TAG_BOOL
            | TAG_INT
            | TAG_FLOAT
            | TAG_DECIMAL
            | TAG_STRING
            | TAG_BYTES
            | TAG_TIMESTAMP
            | TAG_DATE
    )
}

fn decode_decimal(r: &mut Reader<'_>, start: usize) -> Result<Decimal> {
    let negative = match r.byte("a decimal")? {
        DECIMAL_ZERO => return Ok(Decimal::ZERO),
        DECIMAL_NEGATIVE => true,
        DECIMAL_POSITIVE => false,
        b => return Err(corrupt(start + 1, format!("decimal class byte {b:#04x}"))),
    };
    let invert = if negative { 0xFF } else { 0x00 };
    let e100 = i32::from(r.byte("a decimal")? ^ invert) - 0x80;

    // Read base-100 digits up to the even (last) one, accumulating 0.<digits> as an integer.
    let mut mantissa: u128 = 0;
    let mut n: i32 = 0;
    let mut first = None;
    let last = loop {
        let byte = r.byte("a decimal")? ^ invert;
        let digit = byte / 2;
        if digit > 99 {
            return Err(corrupt(
                *r.pos - 1,
                format!("decimal digit {digit} is not base 100"),
            ));
        }
        n += 1;
        if n as usize > MAX_DECIMAL_DIGITS {
            return Err(corrupt(start, "decimal has more digits than any Decimal"));
        }
        mantissa = mantissa * 100 + u128::from(digit);
        first.get_or_insert(digit);
        if byte.is_multiple_of(2) {
            break digit;
        }
    };
    if first == Some(0) || last == 0 {
        return Err(corrupt(
            start,
            "decimal digits have a leading or trailing zero",
        ));
    }

    // |value| = mantissa × 10^(2·e100 − 2n).
    let exp10 = 2 * (e100 - n);
    let mut scale = 0u32;
    if exp10 >= 0 {
        mantissa = 10u128
            .checked_pow(exp10 as u32)
            .and_then(|p| mantissa.checked_mul(p))
            .ok_or_else(|| corrupt(start, "decimal is too large"))?;
    } else {
        scale = exp10.unsigned_abs();
        while scale > 0 && mantissa.is_multiple_of(10) {
            mantissa /= 10;
            scale -= 1;
        }
    }
    if mantissa >> 96 != 0 {
        return Err(corrupt(start, "decimal is too large"));
    }
    if scale > MAX_DECIMAL_SCALE {
        return Err(corrupt(start, "decimal has more than 28 fractional digits"));
    }
    let signed = if negative {
        -(mantissa as i128)
    } else {
        mantissa as i128
    };
    Decimal::try_from_i128_with_scale(signed, scale)
        .map_err(|e| corrupt(start, format!("decimal out of range: {e}")))
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn asc(v: KeyValue) -> Vec<u8> {
        encode_key(&[v])
    }

    fn desc(v: KeyValue) -> Vec<u8> {
        encode_key_with(&[v], &[Direction::Desc]).unwrap()
    }

    /// Equality that also tells `1.5` from `1.50`, on top of `KeyValue`'s bitwise floats.
    fn strict_eq(a: &[KeyValue], b: &[KeyValue]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| match (x, y) {
                (KeyValue::Decimal(x), KeyValue::Decimal(y)) => {
                    x.mantissa() == y.mantissa() && x.scale() == y.scale()
                }
                _ => x == y,
            })
    }

    // ---- Hand-checked encodings: these document the format. ----

    #[test]
    fn fixed_width_encodings() {
        assert_eq!(asc(KeyValue::Null), [0xF0]);
        assert_eq!(desc(KeyValue::Null), [0x0F]);
        assert_eq!(asc(KeyValue::Bool(false)), [0x10, 0x00]);
        assert_eq!(asc(KeyValue::Bool(true)), [0x10, 0x01]);
        assert_eq!(asc(KeyValue::Int(1)), [0x20, 0x80, 0, 0, 0, 0, 0, 0, 0x01]);
        assert_eq!(asc(KeyValue::Int(0)), [0x20, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            asc(KeyValue::Int(-1)),
            [0x20, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(asc(KeyValue::Int(i64::MIN)), [0x20, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            desc(KeyValue::Int(1)),
            [0xDF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]
        );
        assert_eq!(
            asc(KeyValue::Timestamp(-2)),
            [0x70, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]
        );
        assert_eq!(asc(KeyValue::Date(3)), [0x80, 0x80, 0, 0, 0x03]);
    }

    #[test]
    fn float_encodings() {
        assert_eq!(
            asc(KeyValue::Float(1.0)),
            [0x30, 0xBF, 0xF0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            asc(KeyValue::Float(-1.0)),
            [0x30, 0x40, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        let zero = [0x30, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(asc(KeyValue::Float(0.0)), zero);
        assert_eq!(asc(KeyValue::Float(-0.0)), zero);
        let nan = [0x30, 0xFF, 0xF8, 0, 0, 0, 0, 0, 0];
        assert_eq!(asc(KeyValue::Float(f64::NAN)), nan);
        assert_eq!(asc(KeyValue::Float(-f64::NAN)), nan);
        assert_eq!(
            asc(KeyValue::Float(f64::from_bits(0x7FF0_0000_0000_0001))),
            nan
        );
        assert!(asc(KeyValue::Float(f64::INFINITY)) < nan.to_vec());
        assert!(asc(KeyValue::Float(f64::NEG_INFINITY)) < asc(KeyValue::Float(f64::MIN)));
        // The non-canonical forms do not decode.
        let mut neg_zero = vec![0x30];
        neg_zero.extend((!(1u64 << 63)).to_be_bytes());
        assert!(matches!(decode_key(&neg_zero), Err(Error::Corruption(_))));
        let mut neg_nan = vec![0x30];
        neg_nan.extend((!0xFFF8_0000_0000_0000u64).to_be_bytes());
        assert!(matches!(decode_key(&neg_nan), Err(Error::Corruption(_))));
    }

    #[test]
    fn string_and_bytes_encodings() {
        assert_eq!(asc("".into()), [0x50, 0x00, 0x01]);
        assert_eq!(asc("a".into()), [0x50, 0x61, 0x00, 0x01]);
        assert_eq!(
            asc("a\0b".into()),
            [0x50, 0x61, 0x00, 0xFF, 0x62, 0x00, 0x01]
        );
        assert_eq!(
            asc(KeyValue::Bytes(vec![0x00, 0xFF])),
            [0x60, 0x00, 0xFF, 0xFF, 0x00, 0x01]
        );
        assert_eq!(desc("a".into()), [0xAF, 0x9E, 0xFF, 0xFE]);
        assert_eq!(
            desc(KeyValue::Bytes(vec![0x00])),
            [0x9F, 0xFF, 0x00, 0xFF, 0xFE]
        );
        // ("a", "b") sorts before ("ab", "a"): the terminator is below every byte.
        let a_b = encode_key(&["a".into(), "b".into()]);
        let ab_a = encode_key(&["ab".into(), "a".into()]);
        assert!(a_b < ab_a);
        assert!(asc("a".into()) < asc("a\0".into()));
        assert!(asc("a\0".into()) < asc("a\x01".into()));
    }

    #[test]
    fn decimal_encodings() {
        let d = |s: &str| asc(KeyValue::Decimal(dec(s)));
        assert_eq!(d("0"), [0x40, 0x02]);
        assert_eq!(d("1.5"), [0x40, 0x03, 0x81, 0x03, 0x64]);
        assert_eq!(d("-1.5"), [0x40, 0x01, 0x7E, 0xFC, 0x9B]);
        assert_eq!(d("10"), [0x40, 0x03, 0x81, 0x14]);
        assert_eq!(d("9.99"), [0x40, 0x03, 0x81, 0x13, 0xC6]);
        assert_eq!(d("100"), [0x40, 0x03, 0x82, 0x02]);
        assert_eq!(d("1"), [0x40, 0x03, 0x81, 0x02]);
        assert_eq!(d("0.5"), [0x40, 0x03, 0x80, 0x64]);
        assert_eq!(d("0.05"), [0x40, 0x03, 0x80, 0x0A]);
        assert_eq!(
            d("0.0000000000000000000000000001"),
            [0x40, 0x03, 0x73, 0x02]
        );
        assert_eq!(
            d("79228162514264337593543950335"),
            [
                0x40, 0x03, 0x8F, 0x0F, 0xB9, 0x39, 0x21, 0x33, 0x1D, 0x35, 0x57, 0x4B, 0x77, 0x47,
                0x57, 0xBF, 0x07, 0x46
            ]
        );
    }

    #[test]
    fn decimal_edge_cases() {
        let enc = |d: Decimal| asc(KeyValue::Decimal(d));
        let round = |d: Decimal| match decode_key(&enc(d)).unwrap().as_slice() {
            [KeyValue::Decimal(x)] => *x,
            other => panic!("decoded {other:?}"),
        };
        // 0 and -0 are one key, decoding to a positive zero.
        let neg_zero = Decimal::from_parts(0, 0, 0, true, 3);
        assert_eq!(enc(neg_zero), enc(Decimal::ZERO));
        assert!(!round(neg_zero).is_sign_negative());
        assert_eq!(round(neg_zero).scale(), 0);
        // 1.50 and 1.5 are one key; the scale is not kept.
        assert_eq!(enc(dec("1.50")), enc(dec("1.5")));
        assert_eq!(round(dec("1.50")).scale(), 1);
        assert_eq!(round(dec("1.500000")).to_string(), "1.5");
        assert_eq!(round(dec("100")).to_string(), "100");
        // Numeric order, not digit-string order.
        assert!(enc(dec("9.99")) < enc(dec("10")));
        assert!(enc(dec("-10")) < enc(dec("-9.99")));
        assert!(enc(dec("0.1")) < enc(dec("0.11")));
        assert!(enc(dec("-0.11")) < enc(dec("-0.1")));
        assert!(enc(dec("-0.0000000000000000000000000001")) < enc(Decimal::ZERO));
        // The extremes.
        let tiny = dec("0.0000000000000000000000000001");
        for d in [Decimal::MAX, Decimal::MIN, tiny, -tiny, Decimal::ONE] {
            assert_eq!(round(d), d);
        }
        assert!(enc(Decimal::MIN) < enc(-tiny));
        assert!(enc(tiny) < enc(Decimal::MAX));
        assert!(enc(Decimal::MAX) < asc(KeyValue::Null));
    }

    #[test]
    fn non_canonical_decimals_are_corruption() {
        for bytes in [
            vec![0x40, 0x04],                   // unknown class
            vec![0x40, 0x03, 0x81],             // no digits
            vec![0x40, 0x03, 0x81, 0x03],       // no last digit
            vec![0x40, 0x03, 0x81, 0x01, 0x02], // leading zero digit
            vec![0x40, 0x03, 0x81, 0x03, 0x00], // trailing zero digit
            vec![0x40, 0x03, 0x81, 0xC8],       // digit 100
            vec![0x40, 0x03, 0x90, 0x02],       // 1e30: too large
            vec![0x40, 0x03, 0x72, 0x02],       // 1e-30: too small
            vec![0x40, 0x03, 0x81, 0x03, 0x64, 0x00],
        ] {
            let err = decode_key(&bytes).unwrap_err();
            assert!(matches!(err, Error::Corruption(_)), "{bytes:x?}: {err}");
        }
    }

    #[test]
    fn garbage_errors_say_where_and_what() {
        let err = decode_key(&[0x20, 0x80, 0x00]).unwrap_err();
        assert_eq!(
            err,
            Error::Corruption("invalid key encoding at byte 3: key ends inside an int".into())
        );
        let err = decode_key(&[0x10, 0x01, 0x07]).unwrap_err();
        assert_eq!(
            err,
            Error::Corruption("invalid key encoding at byte 2: unknown type tag 0x07".into())
        );
        let err = decode_key(&desc("x".into())).unwrap_err();
        assert!(err.to_string().contains("other direction"), "{err}");
        let err = decode_key(&[0x50, 0x61, 0x00, 0x02]).unwrap_err();
        assert!(err.to_string().contains("0x00 followed by 0x02"), "{err}");
        let err = decode_key(&[0x50, 0xC3, 0x00, 0x01]).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        let err = decode_key_with(&encode_key(&[1.into(), 2.into()]), &[Direction::Asc]);
        assert!(err.unwrap_err().to_string().contains("trailing"));
    }

    #[test]
    fn directions_must_cover_the_values() {
        let err = encode_key_with(&[1.into(), 2.into()], &[Direction::Asc]).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)));
        // Fewer values than directions is a key prefix, and decodes back.
        let dirs = [Direction::Desc, Direction::Asc];
        let key = encode_key_with(&[7.into()], &dirs).unwrap();
        assert_eq!(
            decode_key_with(&key, &dirs).unwrap(),
            vec![KeyValue::Int(7)]
        );
    }

    #[test]
    fn decode_value_advances() {
        let mut key = Vec::new();
        encode_u64(&mut key, 300);
        encode_u64(&mut key, 1);
        encode_value_into(&mut key, &"k".into(), Direction::Desc);
        encode_value_into(&mut key, &KeyValue::Null, Direction::Asc);
        let mut input = key.as_slice();
        assert_eq!(decode_u64(&mut input).unwrap(), 300);
        assert_eq!(decode_u64(&mut input).unwrap(), 1);
        let k = decode_value(&mut input, Direction::Desc).unwrap();
        assert_eq!(k, KeyValue::String("k".into()));
        assert_eq!(
            decode_value(&mut input, Direction::Asc).unwrap(),
            KeyValue::Null
        );
        assert!(input.is_empty());
    }

    #[test]
    fn u64_encodings() {
        let e = |v: u64| {
            let mut buf = Vec::new();
            encode_u64(&mut buf, v);
            buf
        };
        assert_eq!(e(0), [0x00]);
        assert_eq!(e(0xF7), [0xF7]);
        assert_eq!(e(0xF8), [0xF8, 0xF8]);
        assert_eq!(e(0xFF), [0xF8, 0xFF]);
        assert_eq!(e(0x100), [0xF9, 0x01, 0x00]);
        assert_eq!(e(u64::MAX), [0xFF; 9]);
        for bad in [
            &[0xF8, 0x05][..],   // fits in one byte
            &[0xF9, 0x00, 0xFF], // leading zero
            &[0xF9, 0x01],       // truncated
            &[],                 // empty
        ] {
            let mut input = bad;
            let err = decode_u64(&mut input).unwrap_err();
            assert!(matches!(err, Error::Corruption(_)), "{bad:x?}");
        }
    }

    #[test]
    fn prefix_end_increments_the_last_byte_below_ff() {
        assert_eq!(prefix_end(&[0x01, 0x02]), Some(vec![0x01, 0x03]));
        assert_eq!(prefix_end(&[0x01, 0xFF, 0xFF]), Some(vec![0x02]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(&[]), None);
    }

    // ---- Property tests against a reference comparator. ----

    /// The column types a generated schema draws from.
    #[derive(Clone, Copy, Debug)]
    enum Type {
        Bool,
        Int,
        Float,
        Decimal,
        String,
        Bytes,
        Timestamp,
        Date,
    }

    /// SQL order of two values of one column, ascending: NULL last, `-0.0 == 0.0`, NaN above
    /// everything else, decimals numerically, strings and bytes lexicographically.
    fn reference_cmp_value(a: &KeyValue, b: &KeyValue) -> Ordering {
        use KeyValue::*;
        match (a, b) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) | (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Float(a), Float(b)) => match (a.is_nan(), b.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => a.partial_cmp(b).unwrap(),
            },
            (Decimal(a), Decimal(b)) => a.cmp(b),
            (String(a), String(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            _ => panic!("generated tuples mix types in a column: {a:?} vs {b:?}"),
        }
    }

    /// SQL row order: column by column in each column's direction, a prefix first.
    fn reference_cmp(a: &[KeyValue], b: &[KeyValue], dirs: &[Direction]) -> Ordering {
        for ((x, y), dir) in a.iter().zip(b).zip(dirs) {
            let ord = reference_cmp_value(x, y);
            let ord = match dir {
                Direction::Asc => ord,
                Direction::Desc => ord.reverse(),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        a.len().cmp(&b.len())
    }

    fn any_type() -> impl Strategy<Value = Type> {
        prop_oneof![
            Just(Type::Bool),
            Just(Type::Int),
            Just(Type::Float),
            Just(Type::Decimal),
            Just(Type::String),
            Just(Type::Bytes),
            Just(Type::Timestamp),
            Just(Type::Date),
        ]
    }

    fn any_direction() -> impl Strategy<Value = Direction> {
        prop_oneof![Just(Direction::Asc), Just(Direction::Desc)]
    }

    fn any_float() -> impl Strategy<Value = f64> {
        prop_oneof![
            prop::sample::select(vec![
                0.0,
                -0.0,
                1.0,
                -1.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                -f64::NAN,
                f64::MIN_POSITIVE,
                -f64::MIN_POSITIVE,
                f64::from_bits(1),
                f64::MAX,
                f64::MIN,
            ]),
            (-3i32..3).prop_map(f64::from),
            any::<f64>(),
            any::<u64>().prop_map(f64::from_bits),
        ]
    }

    fn any_decimal() -> impl Strategy<Value = Decimal> {
        let tiny = Decimal::new(1, 28);
        prop_oneof![
            prop::sample::select(vec![
                Decimal::ZERO,
                Decimal::from_parts(0, 0, 0, true, 7),
                Decimal::MAX,
                Decimal::MIN,
                tiny,
                -tiny,
            ]),
            // Small numbers with colliding values across scales (1.5 vs 1.50).
            (-300i64..300, 0u32..4).prop_map(|(m, s)| Decimal::new(m, s)),
            // Few digits, any magnitude.
            (-999i64..999, 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
            (-999i128..999, 0u32..=25)
                .prop_map(|(m, p)| Decimal::from_i128_with_scale(m * 10i128.pow(p), 0)),
            // Any mantissa and scale.
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<bool>(),
                0u32..=28
            )
                .prop_map(|(lo, mid, hi, neg, s)| Decimal::from_parts(lo, mid, hi, neg, s)),
        ]
    }

    fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(prop::sample::select(vec![0x00, 0x01, 0xFF, b'a']), 0..5),
            prop::collection::vec(any::<u8>(), 0..20),
        ]
    }

    fn any_string() -> impl Strategy<Value = String> {
        prop_oneof!["[ab\\x00\\x01\u{ff}]{0,4}", any::<String>()]
    }

    fn any_i64() -> impl Strategy<Value = i64> {
        prop_oneof![-3i64..3, any::<i64>(), Just(i64::MIN), Just(i64::MAX)]
    }

    fn value_of(t: Type) -> BoxedStrategy<KeyValue> {
        let typed = match t {
            Type::Bool => any::<bool>().prop_map(KeyValue::Bool).boxed(),
            Type::Int => any_i64().prop_map(KeyValue::Int).boxed(),
            Type::Float => any_float().prop_map(KeyValue::Float).boxed(),
            Type::Decimal => any_decimal().prop_map(KeyValue::Decimal).boxed(),
            Type::String => any_string().prop_map(KeyValue::String).boxed(),
            Type::Bytes => any_bytes().prop_map(KeyValue::Bytes).boxed(),
            Type::Timestamp => any_i64().prop_map(KeyValue::Timestamp).boxed(),
            Type::Date => prop_oneof![-3i32..3, any::<i32>()]
                .prop_map(KeyValue::Date)
                .boxed(),
        };
        prop_oneof![1 => Just(KeyValue::Null), 5 => typed].boxed()
    }

    /// A schema of 1–4 typed, directed columns.
    fn any_schema() -> impl Strategy<Value = Vec<(Type, Direction)>> {
        prop::collection::vec((any_type(), any_direction()), 1..=4)
    }

    fn tuple_of(schema: &[(Type, Direction)]) -> impl Strategy<Value = Vec<KeyValue>> {
        schema.iter().map(|&(t, _)| value_of(t)).collect::<Vec<_>>()
    }

    /// A schema, its directions, and two full-length tuples of it.
    fn two_tuples() -> impl Strategy<Value = (Vec<Direction>, Vec<KeyValue>, Vec<KeyValue>)> {
        any_schema().prop_flat_map(|schema| {
            let dirs: Vec<Direction> = schema.iter().map(|&(_, d)| d).collect();
            (Just(dirs), tuple_of(&schema), tuple_of(&schema))
        })
    }

    fn enc(values: &[KeyValue], dirs: &[Direction]) -> Vec<u8> {
        encode_key_with(values, dirs).unwrap()
    }

    fn normalized(values: &[KeyValue]) -> Vec<KeyValue> {
        values.iter().cloned().map(KeyValue::normalized).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn encoded_order_is_sql_order(
            (dirs, a, b) in two_tuples(),
            cut_a in any::<Index>(),
            cut_b in any::<Index>(),
            truncate in any::<bool>(),
        ) {
            prop_assert_eq!(enc(&a, &dirs).cmp(&enc(&b, &dirs)), reference_cmp(&a, &b, &dirs));
            // Tuples of different lengths too: a prefix sorts first.
            if truncate {
                let a = &a[..=cut_a.index(a.len())];
                let b = &b[..=cut_b.index(b.len())];
                prop_assert_eq!(enc(a, &dirs).cmp(&enc(b, &dirs)), reference_cmp(a, b, &dirs));
            }
        }

        #[test]
        fn decode_inverts_encode((dirs, a, _b) in two_tuples()) {
            let key = enc(&a, &dirs);
            let decoded = decode_key_with(&key, &dirs).unwrap();
            prop_assert!(strict_eq(&decoded, &normalized(&a)), "{:?} -> {:?}", a, decoded);
            // Normalizing changes no key, and an ascending key decodes without directions.
            prop_assert_eq!(enc(&decoded, &dirs), key);
            if dirs.iter().all(|&d| d == Direction::Asc) {
                prop_assert!(strict_eq(&decode_key(&encode_key(&a)).unwrap(), &decoded));
            }
        }

        #[test]
        fn tuple_prefixes_are_key_prefixes_and_spans_are_contiguous(
            (dirs, a, b) in two_tuples(),
            cut in any::<Index>(),
            suffix in prop::collection::vec(any::<u8>(), 0..6),
        ) {
            let prefix = &a[..=cut.index(a.len())];
            let start = enc(prefix, &dirs);
            let end = prefix_end(&start);
            let in_span = |key: &[u8]| key >= &start[..] && end.as_deref().is_none_or(|e| key < e);
            // Every extension of the prefix, in tuples or in raw bytes, lies in the span.
            let full = enc(&a, &dirs);
            prop_assert!(full.starts_with(&start));
            prop_assert!(in_span(&full));
            let extended = [&full[..], &suffix].concat();
            prop_assert!(in_span(&extended));
            // And a tuple lies in the span exactly when it extends the prefix (as values).
            let b_key = enc(&b, &dirs);
            let extends = reference_cmp(&b[..prefix.len()], prefix, &dirs) == Ordering::Equal;
            prop_assert_eq!(in_span(&b_key), extends);
        }

        #[test]
        fn u64_order_and_round_trip(a in any_i64(), b in any_i64(), small in 0u64..0x300) {
            for (x, y) in [(a as u64, b as u64), (small, a as u64), (small, small + 1)] {
                let (mut ex, mut ey) = (Vec::new(), Vec::new());
                encode_u64(&mut ex, x);
                encode_u64(&mut ey, y);
                prop_assert_eq!(ex.cmp(&ey), x.cmp(&y));
                let mut input = &ex[..];
                prop_assert_eq!(decode_u64(&mut input).unwrap(), x);
                prop_assert!(input.is_empty());
            }
        }

        #[test]
        fn decoding_garbage_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..40),
            dirs in prop::collection::vec(any_direction(), 0..6),
        ) {
            // Whatever decodes is canonical: it re-encodes to the same bytes.
            if let Ok(values) = decode_key(&bytes) {
                prop_assert_eq!(encode_key(&values), bytes.clone());
            }
            if let Ok(values) = decode_key_with(&bytes, &dirs) {
                prop_assert_eq!(enc(&values, &dirs), bytes.clone());
            }
            let mut input = &bytes[..];
            let _ = decode_u64(&mut input);
        }

        #[test]
        fn damaged_keys_decode_canonically_or_not_at_all(
            (dirs, a, _b) in two_tuples(),
            at in any::<Index>(),
            byte in any::<u8>(),
            edit in 0..3,
        ) {
            let mut key = enc(&a, &dirs);
            let i = at.index(key.len() + 1);
            match edit {
                0 if i < key.len() => key[i] = byte,
                0 | 1 => key.insert(i, byte),
                _ => {
                    key.truncate(i);
                }
            }
            match decode_key_with(&key, &dirs) {
                Ok(values) => prop_assert_eq!(enc(&values, &dirs), key),
                Err(err) => prop_assert!(matches!(err, Error::Corruption(_)), "{}", err),
            }
        }
    }
}
