//! A raw protocol client: builds frontend messages byte by byte (including
//! malformed ones) and collects the backend's answers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One backend message: type byte and body.
pub type Msg = (u8, Vec<u8>);

/// A raw connection.
pub struct Raw {
    /// The socket.
    stream: TcpStream,
    /// Received bytes not yet split into messages.
    buf: BytesMut,
    /// Frames to send.
    pending: Vec<u8>,
}

/// A message with `kind` and `body`.
pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A NUL-terminated string.
fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

impl Raw {
    /// Connects and logs in as `meridian` (trust).
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut raw = Raw {
            stream,
            buf: BytesMut::new(),
            pending: Vec::new(),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        cstr(&mut body, "user");
        cstr(&mut body, "meridian");
        body.push(0);
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        raw.stream.write_all(&packet).await.unwrap();
        let msgs = raw.until_ready().await;
        assert_eq!(msgs.last().unwrap().0, b'Z');
        raw
    }

    /// Queues raw bytes.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.pending.extend_from_slice(bytes);
        self
    }

    /// Queues `Query`.
    pub fn query(&mut self, sql: &str) -> &mut Self {
        let mut body = Vec::new();
        cstr(&mut body, sql);
        self.raw(&frame(b'Q', &body))
    }

    /// Queues `Parse`.
    pub fn parse(&mut self, name: &str, sql: &str, oids: &[u32]) -> &mut Self {
        let mut body = Vec::new();
        cstr(&mut body, name);
        cstr(&mut body, sql);
        body.extend_from_slice(&(oids.len() as i16).to_be_bytes());
        for oid in oids {
            body.extend_from_slice(&oid.to_be_bytes());
        }
        self.raw(&frame(b'P', &body))
    }

    /// Queues `Bind` with per-parameter formats and result formats.
    pub fn bind(
        &mut self,
        portal: &str,
        statement: &str,
        param_formats: &[i16],
        params: &[Option<&[u8]>],
        result_formats: &[i16],
    ) -> &mut Self {
        let mut body = Vec::new();
        cstr(&mut body, portal);
        cstr(&mut body, statement);
        body.extend_from_slice(&(param_formats.len() as i16).to_be_bytes());
        for f in param_formats {
            body.extend_from_slice(&f.to_be_bytes());
        }
        body.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for p in params {
            match p {
                Some(v) => {
                    body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    body.extend_from_slice(v);
                }
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        body.extend_from_slice(&(result_formats.len() as i16).to_be_bytes());
        for f in result_formats {
            body.extend_from_slice(&f.to_be_bytes());
        }
        self.raw(&frame(b'B', &body))
    }

    /// Queues `Describe` of a statement (`S`) or portal (`P`).
    pub fn describe(&mut self, kind: u8, name: &str) -> &mut Self {
        let mut body = vec![kind];
        cstr(&mut body, name);
        self.raw(&frame(b'D', &body))
    }

    /// Queues `Execute`.
    pub fn execute(&mut self, portal: &str, max_rows: i32) -> &mut Self {
        let mut body = Vec::new();
        cstr(&mut body, portal);
        body.extend_from_slice(&max_rows.to_be_bytes());
        self.raw(&frame(b'E', &body))
    }

    /// Queues `Sync`.
    pub fn sync(&mut self) -> &mut Self {
        self.raw(&frame(b'S', &[]))
    }

    /// Sends what is queued and reads up to and including `ReadyForQuery`.
    pub async fn run(&mut self) -> Vec<Msg> {
        let pending = std::mem::take(&mut self.pending);
        self.stream.write_all(&pending).await.unwrap();
        self.until_ready().await
    }

    /// Reads messages up to and including `ReadyForQuery`.
    async fn until_ready(&mut self) -> Vec<Msg> {
        let mut msgs = Vec::new();
        loop {
            while self.buf.len() >= 5 {
                let len = (&self.buf[1..5]).get_i32() as usize;
                if self.buf.len() < 1 + len {
                    break;
                }
                let kind = self.buf[0];
                let body = self.buf[5..1 + len].to_vec();
                self.buf.advance(1 + len);
                msgs.push((kind, body));
                if kind == b'Z' {
                    return msgs;
                }
            }
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("server answered in time")
                    .unwrap();
            assert!(n > 0, "server closed the connection; got {msgs:?}");
        }
    }
}

/// The SQLSTATEs of the error responses among `msgs`.
pub fn error_codes(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .filter(|(k, _)| *k == b'E')
        .map(|(_, body)| field(body, b'C'))
        .collect()
}

/// Field `code` of an error response body.
pub fn field(body: &[u8], code: u8) -> String {
    let mut i = 0;
    while i < body.len() && body[i] != 0 {
        let end = i + 1 + body[i + 1..].iter().position(|&b| b == 0).unwrap();
        if body[i] == code {
            return String::from_utf8_lossy(&body[i + 1..end]).into_owned();
        }
        i = end + 1;
    }
    String::new()
}

/// The transaction status of the final `ReadyForQuery`.
pub fn status(msgs: &[Msg]) -> u8 {
    let (kind, body) = msgs.last().unwrap();
    assert_eq!(*kind, b'Z');
    body[0]
}

/// The message types, as a string (`"12DC"`...).
pub fn kinds(msgs: &[Msg]) -> String {
    msgs.iter().map(|(k, _)| *k as char).collect()
}

/// The values of the data rows.
pub fn rows(msgs: &[Msg]) -> Vec<Vec<Option<Vec<u8>>>> {
    msgs.iter()
        .filter(|(k, _)| *k == b'D')
        .map(|(_, body)| {
            let mut b = &body[..];
            let n = b.get_i16();
            (0..n)
                .map(|_| {
                    let len = b.get_i32();
                    (len >= 0).then(|| {
                        let v = b[..len as usize].to_vec();
                        b.advance(len as usize);
                        v
                    })
                })
                .collect()
        })
        .collect()
}

/// The command tags.
pub fn tags(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .filter(|(k, _)| *k == b'C')
        .map(|(_, body)| String::from_utf8_lossy(&body[..body.len() - 1]).into_owned())
        .collect()
}
