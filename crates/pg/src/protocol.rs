//! Framing and decoding of frontend messages; encoding helpers for backend
//! messages.
//!
//! A PostgreSQL frontend message is a type byte, a big-endian `i32` length
//! (counting itself) and a body. This module cuts the byte stream into frames
//! **by length first** and only then decodes the body, from a slice that ends
//! where the frame ends. That split is what keeps a connection alive after bad
//! input: a body that is short, has a bad count or trailing bytes, or a type
//! byte nobody knows, becomes a protocol error for that one message (SQLSTATE
//! `08P01`, like PostgreSQL's "insufficient data left in message") while the
//! frames after it still decode. Only a frame whose length field itself is
//! impossible (negative, or above 1 GiB) loses the framing; that is fatal, as
//! in PostgreSQL.
//!
//! Decoding is checked end to end (no panicking reads) and zero-copy where it
//! matters: `Bind` parameter values are slices of the frame.
//!
//! Backend messages are encoded with `pgwire`'s message types, except
//! `DataRow`, which is written straight into the connection's output buffer
//! ([`begin_data_row`] / [`end_data_row`]) so that a result set costs no
//! allocation per row.
//!
//! Left out: the COPY sub-protocol (COPY messages are accepted and ignored)
//! and protocol 3.2's longer cancel keys (the server negotiates 3.0).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use pgwire::messages::PgWireBackendMessage;

use crate::sqlstate::WireError;

/// Largest frame accepted (PostgreSQL's limit: 1 GiB).
const MAX_FRAME: usize = 1 << 30;

/// Largest startup packet accepted (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP: usize = 10_000;

/// The request code of an `SSLRequest`.
const SSL_REQUEST: i32 = 80_877_103;
/// The request code of a `GSSENCRequest`.
const GSSENC_REQUEST: i32 = 80_877_104;
/// The request code of a `CancelRequest`.
const CANCEL_REQUEST: i32 = 80_877_102;

/// A decoded frontend message (after startup).
#[derive(Debug, PartialEq)]
pub(crate) enum Frontend {
    /// `Q`: a simple query.
    Query(String),
    /// `P`: prepare a statement.
    Parse {
        /// Statement name; empty for the unnamed statement.
        name: String,
        /// The SQL text.
        sql: String,
        /// Parameter type OIDs given by the client (0 = unspecified).
        param_oids: Vec<u32>,
    },
    /// `B`: bind parameters to a statement, creating a portal.
    Bind {
        /// Portal name; empty for the unnamed portal.
        portal: String,
        /// Statement name; empty for the unnamed statement.
        statement: String,
        /// Parameter format codes (0 text, 1 binary): none, one or one each.
        param_formats: Vec<i16>,
        /// Parameter values; `None` is NULL.
        params: Vec<Option<Bytes>>,
        /// Result column format codes: none, one or one each.
        result_formats: Vec<i16>,
    },
    /// `D`: describe a statement (`S`) or portal (`P`).
    Describe {
        /// `b'S'` or `b'P'`.
        kind: u8,
        /// The name.
        name: String,
    },
    /// `E`: execute a portal.
    Execute {
        /// Portal name.
        portal: String,
        /// Row limit; 0 means all rows.
        max_rows: i32,
    },
    /// `C`: close a statement (`S`) or portal (`P`).
    Close {
        /// `b'S'` or `b'P'`.
        kind: u8,
        /// The name.
        name: String,
    },
    /// `S`: end of an extended-query batch.
    Sync,
    /// `H`: send what is buffered.
    Flush,
    /// `X`: the client is leaving.
    Terminate,
    /// `p`: a password or SASL message; its body, decoded by the caller.
    Password(Bytes),
    /// `d`, `c`, `f`: COPY data, done or fail — ignored (no COPY support).
    Copy,
}

/// What the first packet of a connection asked for.
#[derive(Debug, PartialEq)]
pub(crate) enum StartupPacket {
    /// `SSLRequest`: answered `N` (no TLS).
    Ssl,
    /// `GSSENCRequest`: answered `N`.
    GssEnc,
    /// `CancelRequest` for the connection with this process id and key.
    Cancel {
        /// Backend process id from `BackendKeyData`.
        pid: i32,
        /// Secret key from `BackendKeyData`.
        key: i32,
    },
    /// `StartupMessage`.
    Startup {
        /// Protocol major version.
        major: u16,
        /// Protocol minor version.
        minor: u16,
        /// Name/value parameters (`user`, `database`, `application_name`...).
        params: Vec<(String, String)>,
    },
}

/// Cuts the next startup packet (length-prefixed, no type byte) from `buf`.
/// `Ok(None)`: need more bytes. Errors are fatal.
pub(crate) fn next_startup(buf: &mut BytesMut) -> Result<Option<StartupPacket>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > MAX_STARTUP {
        return Err(WireError::fatal(
            "08P01",
            "invalid length of startup packet",
        ));
    }
    let len = len as usize;
    if buf.len() < len {
        buf.reserve(len - buf.len());
        return Ok(None);
    }
    let mut frame = Reader::new(buf.split_to(len).freeze().slice(4..));
    let fatal = |e: WireError| WireError { fatal: true, ..e };
    let code = frame.i32().map_err(fatal)?;
    let packet = match code {
        SSL_REQUEST => StartupPacket::Ssl,
        GSSENC_REQUEST => StartupPacket::GssEnc,
        CANCEL_REQUEST => StartupPacket::Cancel {
            pid: frame.i32().map_err(fatal)?,
            key: frame.i32().map_err(fatal)?,
        },
        code => {
            let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
            let mut params = Vec::new();
            loop {
                let name = frame.cstr().map_err(fatal)?;
                if name.is_empty() {
                    break;
                }
                let value = frame.cstr().map_err(fatal)?;
                params.push((name, value));
            }
            StartupPacket::Startup {
                major,
                minor,
                params,
            }
        }
    };
    Ok(Some(packet))
}

/// A message's type byte and its decoded body (or a per-message error).
pub(crate) type Frame = (u8, Result<Frontend, WireError>);

/// Cuts the next message frame from `buf`: `Ok(None)` when it is not complete
/// yet. The outer error is fatal (the framing is lost); the inner result is
/// the decoded message or a per-message protocol error.
pub(crate) fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 || len as usize > MAX_FRAME {
        return Err(WireError::fatal("08P01", "invalid message length"));
    }
    let total = 1 + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let frame = buf.split_to(total).freeze();
    let kind = frame[0];
    Ok(Some((kind, decode(kind, frame.slice(5..)))))
}

/// Decodes the body of a message of type `kind`.
fn decode(kind: u8, body: Bytes) -> Result<Frontend, WireError> {
    let mut r = Reader::new(body);
    let msg = match kind {
        b'Q' => Frontend::Query(r.cstr()?),
        b'P' => {
            let name = r.cstr()?;
            let sql = r.cstr()?;
            let count = r.count(4)?;
            let mut param_oids = Vec::with_capacity(count);
            for _ in 0..count {
                param_oids.push(r.i32()? as u32);
            }
            Frontend::Parse {
                name,
                sql,
                param_oids,
            }
        }
        b'B' => {
            let portal = r.cstr()?;
            let statement = r.cstr()?;
            let param_formats = r.formats()?;
            let count = r.count(4)?;
            let mut params = Vec::with_capacity(count);
            for _ in 0..count {
                let len = r.i32()?;
                params.push(match len {
                    -1 => None,
                    len if len >= 0 => Some(r.bytes(len as usize)?),
                    _ => return Err(WireError::protocol("invalid parameter length in Bind")),
                });
            }
            let result_formats = r.formats()?;
            Frontend::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            }
        }
        b'D' | b'C' => {
            let target = r.u8()?;
            if target != b'S' && target != b'P' {
                return Err(WireError::protocol(format!(
                    "invalid {} message subtype {target}",
                    if kind == b'D' { "DESCRIBE" } else { "CLOSE" }
                )));
            }
            let name = r.cstr()?;
            if kind == b'D' {
                Frontend::Describe { kind: target, name }
            } else {
                Frontend::Close { kind: target, name }
            }
        }
        b'E' => Frontend::Execute {
            portal: r.cstr()?,
            max_rows: r.i32()?,
        },
        b'S' => Frontend::Sync,
        b'H' => Frontend::Flush,
        b'X' => Frontend::Terminate,
        b'p' => return Ok(Frontend::Password(r.rest())),
        b'd' | b'c' | b'f' => return Ok(Frontend::Copy),
        other => {
            return Err(WireError::protocol(format!(
                "invalid frontend message type {other}"
            )))
        }
    };
    r.finish()?;
    Ok(msg)
}

/// A bounds-checked reader over one message body.
pub(crate) struct Reader {
    /// The body.
    buf: Bytes,
}

impl Reader {
    /// A reader over `buf`.
    pub fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    /// The error of a read past the end.
    fn short() -> WireError {
        WireError::protocol("insufficient data left in message")
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        if self.buf.is_empty() {
            return Err(Self::short());
        }
        Ok(self.buf.get_u8())
    }

    /// A big-endian `i16`.
    pub fn i16(&mut self) -> Result<i16, WireError> {
        if self.buf.len() < 2 {
            return Err(Self::short());
        }
        Ok(self.buf.get_i16())
    }

    /// A big-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, WireError> {
        if self.buf.len() < 4 {
            return Err(Self::short());
        }
        Ok(self.buf.get_i32())
    }

    /// `len` raw bytes, zero-copy.
    pub fn bytes(&mut self, len: usize) -> Result<Bytes, WireError> {
        if self.buf.len() < len {
            return Err(Self::short());
        }
        Ok(self.buf.split_to(len))
    }

    /// Everything left.
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// A NUL-terminated UTF-8 string.
    pub fn cstr(&mut self) -> Result<String, WireError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| WireError::protocol("invalid string in message"))?;
        let raw = self.buf.split_to(end + 1);
        String::from_utf8(raw[..end].to_vec())
            .map_err(|_| WireError::new("22021", "invalid byte sequence for encoding \"UTF8\""))
    }

    /// An `i16` element count whose elements of `elem_size` bytes each must
    /// fit in what is left (so a lying count cannot make us allocate).
    fn count(&mut self, elem_size: usize) -> Result<usize, WireError> {
        let count = self.i16()?;
        if count < 0 || count as usize * elem_size > self.buf.len() {
            return Err(Self::short());
        }
        Ok(count as usize)
    }

    /// A list of format codes, each 0 (text) or 1 (binary).
    fn formats(&mut self) -> Result<Vec<i16>, WireError> {
        let count = self.count(2)?;
        let mut formats = Vec::with_capacity(count);
        for _ in 0..count {
            let format = self.i16()?;
            if format != 0 && format != 1 {
                return Err(WireError::protocol(format!(
                    "unsupported format code: {format}"
                )));
            }
            formats.push(format);
        }
        Ok(formats)
    }

    /// Checks that the body was consumed exactly.
    fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::protocol("invalid message format"))
        }
    }
}

/// The format (0 text, 1 binary) of column or parameter `index` under a
/// list of format codes that is empty (all text), of length one (all the
/// same) or one per item. The caller validated the length.
pub(crate) fn format_at(formats: &[i16], index: usize) -> i16 {
    match formats.len() {
        0 => 0,
        1 => formats[0],
        _ => formats.get(index).copied().unwrap_or(0),
    }
}

/// Whether a list of format codes fits `count` items.
pub(crate) fn formats_fit(formats: &[i16], count: usize) -> bool {
    formats.len() <= 1 || formats.len() == count
}

/// Appends a backend message to `out`.
pub(crate) fn put(out: &mut BytesMut, msg: PgWireBackendMessage) {
    if let Err(err) = msg.encode(out) {
        // Only an oversized message fails to encode (a command tag or
        // parameter status of more than 30 kB); never worth a dead connection.
        tracing::warn!(%err, "dropping a backend message that does not encode");
    }
}

/// Starts a `DataRow` of `columns` values in `out`; returns the offset to
/// hand to [`end_data_row`]. Values follow as `i32` length (-1 for NULL)
/// and bytes.
pub(crate) fn begin_data_row(out: &mut BytesMut, columns: usize) -> usize {
    let start = out.len();
    out.put_u8(b'D');
    out.put_i32(0); // length, patched by end_data_row
    out.put_i16(columns as i16);
    start
}

/// Finishes the `DataRow` begun at `start`, patching its length.
pub(crate) fn end_data_row(out: &mut BytesMut, start: usize) {
    let len = (out.len() - start - 1) as i32;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// Writes a length-prefixed value whose bytes `write` appends, patching the
/// length afterwards (for values whose size is not known in advance).
pub(crate) fn put_value_with(out: &mut BytesMut, write: impl FnOnce(&mut BytesMut)) {
    let at = out.len();
    out.put_i32(0);
    write(out);
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn decodes_bind_zero_copy_and_in_pieces() {
        let mut body = Vec::new();
        body.extend_from_slice(b"p1\0s1\0");
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&4i32.to_be_bytes());
        body.extend_from_slice(&7i32.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        let bytes = frame(b'B', &body);
        let mut buf = BytesMut::new();
        // Arrives in two pieces: nothing until the frame is complete.
        buf.extend_from_slice(&bytes[..7]);
        assert_eq!(next_frame(&mut buf).unwrap(), None);
        buf.extend_from_slice(&bytes[7..]);
        let msg = next_frame(&mut buf).unwrap().unwrap().1.unwrap();
        assert_eq!(
            msg,
            Frontend::Bind {
                portal: "p1".into(),
                statement: "s1".into(),
                param_formats: vec![1],
                params: vec![Some(Bytes::from_static(&[0, 0, 0, 7])), None],
                result_formats: vec![],
            }
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn a_malformed_body_is_an_error_for_that_message_only() {
        // A Bind claiming 100 parameters, followed by a good Sync.
        let mut body = b"\0\0".to_vec();
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&100i16.to_be_bytes());
        let mut buf = BytesMut::from(&frame(b'B', &body)[..]);
        buf.extend_from_slice(&frame(b'S', &[]));
        let err = next_frame(&mut buf).unwrap().unwrap().1.unwrap_err();
        assert_eq!(err.code, "08P01");
        assert!(!err.fatal);
        assert_eq!(
            next_frame(&mut buf).unwrap().unwrap().1.unwrap(),
            Frontend::Sync
        );
        // Unknown types and trailing garbage, too.
        let mut buf = BytesMut::from(&frame(b'?', b"xyz")[..]);
        assert_eq!(
            next_frame(&mut buf).unwrap().unwrap().1.unwrap_err().code,
            "08P01"
        );
        let mut buf = BytesMut::from(&frame(b'S', b"extra")[..]);
        assert_eq!(
            next_frame(&mut buf).unwrap().unwrap().1.unwrap_err().code,
            "08P01"
        );
        // A bad length loses the framing: fatal.
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 1][..]);
        assert!(next_frame(&mut buf).unwrap_err().fatal);
    }

    #[test]
    fn decodes_startup_packets() {
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        body.extend_from_slice(b"user\0alice\0database\0db\0\0");
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        let mut buf = BytesMut::from(&packet[..]);
        assert_eq!(
            next_startup(&mut buf).unwrap().unwrap(),
            StartupPacket::Startup {
                major: 3,
                minor: 0,
                params: vec![
                    ("user".into(), "alice".into()),
                    ("database".into(), "db".into())
                ],
            }
        );
        let mut cancel = 16i32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
        cancel.extend_from_slice(&42i32.to_be_bytes());
        cancel.extend_from_slice(&(-7i32).to_be_bytes());
        let mut buf = BytesMut::from(&cancel[..]);
        assert_eq!(
            next_startup(&mut buf).unwrap().unwrap(),
            StartupPacket::Cancel { pid: 42, key: -7 }
        );
    }

    #[test]
    fn data_rows_patch_their_length() {
        let mut out = BytesMut::new();
        let start = begin_data_row(&mut out, 2);
        out.put_i32(-1);
        put_value_with(&mut out, |o| o.put_slice(b"abc"));
        end_data_row(&mut out, start);
        assert_eq!(
            &out[..],
            &[b'D', 0, 0, 0, 17, 0, 2, 255, 255, 255, 255, 0, 0, 0, 3, b'a', b'b', b'c']
        );
    }

    #[test]
    fn format_lists() {
        assert_eq!(format_at(&[], 3), 0);
        assert_eq!(format_at(&[1], 3), 1);
        assert_eq!(format_at(&[0, 1], 1), 1);
        assert!(formats_fit(&[], 3) && formats_fit(&[1], 3) && formats_fit(&[0, 1, 0], 3));
        assert!(!formats_fit(&[0, 1], 3));
    }
}
