//! Connection startup: TLS refusal, protocol negotiation, authentication,
//! and the parameters every client expects.
//!
//! The first packet of a connection has no type byte. It is one of:
//!
//! - `SSLRequest` / `GSSENCRequest`: answered `N` (Meridian speaks plain
//!   TCP; clients then continue unencrypted, as `sslmode=prefer` allows);
//! - `CancelRequest`: handed to the [`CancelRegistry`]; the connection is
//!   closed without a reply, as the protocol says;
//! - `StartupMessage`: protocol 3.x with `user`, `database`,
//!   `application_name`, ... A client asking for a newer minor version or
//!   for `_pq_.` protocol options gets `NegotiateProtocolVersion` and
//!   continues with 3.0.
//!
//! **Authentication** is *trust* when no password is configured (any user
//! name is accepted), and **SCRAM-SHA-256** (RFC 5802/7677, what PostgreSQL
//! uses by default) when one is: `AuthenticationSASL`, the client-first and
//! client-final exchange, `AuthenticationSASLFinal` with the server
//! signature. The SCRAM state machine is `pgwire`'s; the verifier (salt,
//! stored key, server key) is derived once per server, so a login costs no
//! key stretching on the server. A user other than the configured one gets a
//! mock verifier and fails exactly like a wrong password (`28P01`), so user
//! names cannot be probed.
//!
//! On success the server sends `AuthenticationOk`, a `ParameterStatus` for
//! each reported setting (`server_version`, `server_encoding`,
//! `client_encoding`, `DateStyle`, `TimeZone`, `integer_datetimes`,
//! `standard_conforming_strings`, `application_name`, `is_superuser`, ...),
//! `BackendKeyData` for cancellation, and `ReadyForQuery`.
//!
//! Left out: TLS, GSSAPI, MD5 and cleartext passwords, and channel binding
//! (`SCRAM-SHA-256-PLUS`, which needs TLS).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret, ScramServerAuth};
use pgwire::error::PgWireError;
use pgwire::messages::startup::{Authentication, NegotiateProtocolVersion};
use pgwire::messages::PgWireBackendMessage;
use tokio::io::AsyncWriteExt;

use crate::cancel::CancelRegistry;
use crate::conn::Io;
use crate::protocol::{next_startup, Frontend, Reader, StartupPacket};
use crate::sqlstate::WireError;

/// The SCRAM iteration count of the server's verifier (PostgreSQL's default).
const SCRAM_ITERATIONS: usize = 4096;

/// A SCRAM verifier: what the server keeps instead of the password.
#[derive(Clone)]
struct Verifier {
    /// The salt.
    salt: Vec<u8>,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    server_key: Vec<u8>,
}

impl Verifier {
    /// The verifier of a salted password.
    fn new(salt: Vec<u8>, salted_password: Vec<u8>) -> Self {
        match ScramSecret::verifier_from_salted_password(salt, salted_password, SCRAM_ITERATIONS) {
            ScramSecret::Verifier {
                salt,
                stored_key,
                server_key,
                ..
            } => Self {
                salt,
                stored_key,
                server_key,
            },
            ScramSecret::SaltedPassword { .. } => unreachable!("asked for a verifier"),
        }
    }

    /// The secret for one login.
    fn secret(&self) -> ScramSecret {
        ScramSecret::Verifier {
            salt: self.salt.clone(),
            iterations: SCRAM_ITERATIONS,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(<redacted>)")
    }
}

/// The password material of a server.
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    /// The one user who may log in.
    pub user: String,
    /// Its SCRAM verifier.
    verifier: Verifier,
    /// A verifier no password matches, for other user names.
    mock: Verifier,
}

impl Credentials {
    /// Derives the verifiers for `user` / `password`.
    pub fn new(user: &str, password: &str) -> Self {
        let salt = random_bytes(16);
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        Self {
            user: user.to_owned(),
            verifier: Verifier::new(salt, salted),
            mock: Verifier::new(random_bytes(16), random_bytes(32)),
        }
    }
}

/// `n` unpredictable bytes from the standard library's random hasher keys.
fn random_bytes(n: usize) -> Vec<u8> {
    let state = RandomState::new();
    let mut out = Vec::with_capacity(n + 8);
    let mut i = 0u64;
    while out.len() < n {
        let mut hasher = state.build_hasher();
        hasher.write_u64(i);
        out.extend_from_slice(&hasher.finish().to_le_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

/// Who connected.
#[derive(Clone, Debug)]
pub(crate) struct Login {
    /// The user name.
    pub user: String,
    /// The `application_name` startup parameter.
    pub application_name: String,
}

/// Runs the startup phase up to (not including) `AuthenticationOk`.
/// `Ok(None)`: the connection is done (a cancel request, or the client left).
pub(crate) async fn startup(
    io: &mut Io,
    cancels: &CancelRegistry,
    credentials: Option<&Credentials>,
) -> Result<Option<Login>, WireError> {
    let (minor, params) = loop {
        let packet = loop {
            if let Some(packet) = next_startup(&mut io.inbuf)? {
                break packet;
            }
            if !io.read_more().await.map_err(io_error)? {
                return Ok(None);
            }
        };
        match packet {
            StartupPacket::Ssl | StartupPacket::GssEnc => {
                io.stream.write_all(b"N").await.map_err(io_error)?;
            }
            StartupPacket::Cancel { pid, key } => {
                cancels.cancel(pid, key);
                return Ok(None);
            }
            StartupPacket::Startup {
                major,
                minor,
                params,
            } => {
                if major != 3 {
                    return Err(WireError::fatal(
                        "0A000",
                        format!(
                            "unsupported frontend protocol {major}.{minor}: server supports 3.0"
                        ),
                    ));
                }
                break (minor, params);
            }
        }
    };
    let unsupported: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.clone())
        .collect();
    if minor > 0 || !unsupported.is_empty() {
        io.send(PgWireBackendMessage::NegotiateProtocolVersion(
            NegotiateProtocolVersion::new(0, unsupported),
        ));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let user = param("user").filter(|u| !u.is_empty()).ok_or_else(|| {
        WireError::fatal(
            "28000",
            "no PostgreSQL user name specified in startup packet",
        )
    })?;
    let login = Login {
        application_name: param("application_name").unwrap_or_default(),
        user,
    };
    if let Some(credentials) = credentials {
        scram(io, credentials, &login.user).await?;
    }
    Ok(Some(login))
}

/// The SCRAM-SHA-256 exchange; an error means the login failed.
async fn scram(io: &mut Io, credentials: &Credentials, user: &str) -> Result<(), WireError> {
    let failed = || {
        WireError::fatal(
            "28P01",
            format!("password authentication failed for user \"{user}\""),
        )
    };
    let secret = if user == credentials.user {
        credentials.verifier.secret()
    } else {
        credentials.mock.secret()
    };
    io.send(PgWireBackendMessage::Authentication(Authentication::SASL(
        vec!["SCRAM-SHA-256".to_owned()],
    )));
    io.flush().await.map_err(io_error)?;

    // SASLInitialResponse: mechanism, then the client-first message.
    let mut r = Reader::new(password_message(io).await?);
    let mechanism = r.cstr()?;
    if mechanism != "SCRAM-SHA-256" {
        return Err(WireError::fatal(
            "08P01",
            "client selected an invalid SASL authentication mechanism",
        ));
    }
    let len = r.i32()?;
    let client_first = if len < 0 {
        Bytes::new()
    } else {
        r.bytes(len as usize)?
    };
    let (server_first, waiting) = ScramServerAuth::new()
        .on_client_first_message_with_secret(&client_first, secret)
        .map_err(|e| scram_error(e, &failed))?;
    io.send(PgWireBackendMessage::Authentication(
        Authentication::SASLContinue(Bytes::from(server_first)),
    ));
    io.flush().await.map_err(io_error)?;

    // SASLResponse: the client-final message with the proof.
    let client_final = password_message(io).await?;
    let server_final = waiting
        .on_client_final_message(&client_final)
        .map_err(|e| scram_error(e, &failed))?;
    io.send(PgWireBackendMessage::Authentication(
        Authentication::SASLFinal(Bytes::from(server_final)),
    ));
    Ok(())
}

/// The error for a SCRAM failure: a wrong proof is a failed password,
/// anything else a malformed exchange.
fn scram_error(err: PgWireError, failed: &dyn Fn() -> WireError) -> WireError {
    match err {
        PgWireError::InvalidPassword(_) => failed(),
        other => WireError::fatal("08P01", format!("malformed SCRAM message: {other}")),
    }
}

/// Reads the next message, which must be a password-family (`p`) message.
async fn password_message(io: &mut Io) -> Result<Bytes, WireError> {
    match io.next_message().await.map_err(io_error)? {
        Some((_, Ok(Frontend::Password(body)))) => Ok(body),
        Some((_, Err(e))) => Err(WireError { fatal: true, ..e }),
        Some(_) => Err(WireError::fatal(
            "08P01",
            "expected SASL response, got another message type",
        )),
        None => Err(WireError::fatal(
            "08006",
            "client closed the connection during authentication",
        )),
    }
}

/// An IO error during startup: the connection is gone.
fn io_error(err: std::io::Error) -> WireError {
    WireError::fatal("08006", format!("connection failure: {err}"))
}
