//! A client for PostgreSQL's physical streaming replication protocol: startup with
//! `replication=true`, authentication (trust, password, md5, SCRAM-SHA-256), replication commands
//! as simple queries, then the copy-both stream of WAL (`XLogData`) and keepalives, answered by
//! standby status updates. Framing is read here; the SCRAM and md5 computations come from
//! `postgres-protocol`. TLS is not spoken: a replication connection goes over a Unix socket or
//! loopback/private network (`sslmode=require` is refused with that reason).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where and as whom a replication connection connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// A TCP host, or the Unix socket file (`<dir>/.s.PGSQL.<port>`).
    pub addr: Addr,
    pub user: String,
    pub password: Option<String>,
    pub application_name: String,
}

#[derive(Debug, Clone)]
pub enum Addr {
    Tcp(String, u16),
    Unix(PathBuf),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(h, p) => write!(f, "{h}:{p}"),
            Addr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Errors of a replication connection. `Server` carries PostgreSQL's SQLSTATE and message.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{severity} {code}: {message}")]
    Server {
        severity: String,
        code: String,
        message: String,
    },
    #[error("protocol: {0}")]
    Unexpected(String),
    #[error(
        "the server asks for {0} authentication, which btar's replication client does not speak"
    )]
    UnsupportedAuth(String),
    #[error("the server asks for a password and the conninfo gives none")]
    NoPassword,
}

impl ProtocolError {
    /// The SQLSTATE of a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ProtocolError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, ProtocolError>;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One message from the server: its tag and body.
struct Msg {
    tag: u8,
    body: Bytes,
}

/// What arrives during streaming.
#[derive(Debug)]
pub enum Streamed {
    /// WAL bytes starting at `start`; `server_end` is the server's WAL end when it sent them.
    Wal {
        start: u64,
        server_end: u64,
        data: Bytes,
    },
    Keepalive {
        server_end: u64,
        reply_requested: bool,
    },
    /// The server ended the stream (the timeline ended, or it shuts down).
    Done,
}

pub struct ReplicationConn {
    io: Box<dyn Io>,
    buf: BytesMut,
}

impl std::fmt::Debug for ReplicationConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationConn").finish_non_exhaustive()
    }
}

impl ReplicationConn {
    pub async fn connect(t: &Target, timeout: Duration) -> Result<Self> {
        let io: Box<dyn Io> = match &t.addr {
            Addr::Tcp(h, p) => {
                let s =
                    tokio::time::timeout(timeout, tokio::net::TcpStream::connect((h.as_str(), *p)))
                        .await
                        .map_err(|_| {
                            std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                        })??;
                s.set_nodelay(true)?;
                Box::new(s)
            }
            Addr::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
        };
        let mut c = Self {
            io,
            buf: BytesMut::with_capacity(64 << 10),
        };
        let mut out = BytesMut::new();
        postgres_protocol::message::frontend::startup_message(
            [
                ("user", t.user.as_str()),
                ("replication", "true"),
                ("application_name", t.application_name.as_str()),
            ],
            &mut out,
        )?;
        c.send(&out).await?;
        c.authenticate(t).await?;
        Ok(c)
    }

    async fn authenticate(&mut self, t: &Target) -> Result<()> {
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let m = self.recv().await?;
            match m.tag {
                b'R' => {
                    let mut b = m.body.clone();
                    let code = get_i32(&mut b)?;
                    let mut out = BytesMut::new();
                    let password = || t.password.as_deref().ok_or(ProtocolError::NoPassword);
                    match code {
                        0 => {}
                        3 => {
                            postgres_protocol::message::frontend::password_message(
                                password()?.as_bytes(),
                                &mut out,
                            )?;
                        }
                        5 => {
                            if b.len() < 4 {
                                return Err(ProtocolError::Unexpected("short md5 salt".into()));
                            }
                            let salt = [b[0], b[1], b[2], b[3]];
                            let h = md5_hash(t.user.as_bytes(), password()?.as_bytes(), salt);
                            postgres_protocol::message::frontend::password_message(
                                h.as_bytes(),
                                &mut out,
                            )?;
                        }
                        10 => {
                            let mechs: Vec<String> = b
                                .split(|c| *c == 0)
                                .filter(|s| !s.is_empty())
                                .map(|s| String::from_utf8_lossy(s).into_owned())
                                .collect();
                            if !mechs.iter().any(|m| m == sasl::SCRAM_SHA_256) {
                                return Err(ProtocolError::UnsupportedAuth(mechs.join(", ")));
                            }
                            let s = sasl::ScramSha256::new(
                                password()?.as_bytes(),
                                sasl::ChannelBinding::unsupported(),
                            );
                            postgres_protocol::message::frontend::sasl_initial_response(
                                sasl::SCRAM_SHA_256,
                                s.message(),
                                &mut out,
                            )?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                ProtocolError::Unexpected("SASL continue first".into())
                            })?;
                            s.update(&b)?;
                            postgres_protocol::message::frontend::sasl_response(
                                s.message(),
                                &mut out,
                            )?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                ProtocolError::Unexpected("SASL final first".into())
                            })?;
                            s.finish(&b)?;
                        }
                        other => {
                            return Err(ProtocolError::UnsupportedAuth(format!("method {other}")));
                        }
                    }
                    if !out.is_empty() {
                        self.send(&out).await?;
                    }
                }
                b'Z' => return Ok(()),
                // ParameterStatus, BackendKeyData, notices.
                b'S' | b'K' | b'N' => {}
                other => return Err(unexpected(other, "authentication")),
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Reads one message; an ErrorResponse becomes [`ProtocolError::Server`].
    async fn recv(&mut self) -> Result<Msg> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if len < 4 {
                    return Err(ProtocolError::Unexpected(format!("message length {len}")));
                }
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    let mut frame = self.buf.split_to(len + 1);
                    frame.advance(5);
                    let body = frame.freeze();
                    if tag == b'E' {
                        return Err(server_error(&body));
                    }
                    return Ok(Msg { tag, body });
                }
                self.buf.reserve(len + 1 - self.buf.len());
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(ProtocolError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
        }
    }

    /// Runs a replication command; its rows as text (NULL as `None`).
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut out = BytesMut::new();
        postgres_protocol::message::frontend::query(sql, &mut out)?;
        self.send(&out).await?;
        let mut rows = Vec::new();
        let mut failed = None;
        loop {
            match self.recv().await {
                Ok(m) => match m.tag {
                    b'D' => rows.push(data_row(m.body)?),
                    b'Z' => break,
                    b'T' | b'C' | b'N' | b'S' | b'I' => {}
                    other => return Err(unexpected(other, "a query")),
                },
                // The server still sends ReadyForQuery after an error.
                Err(e @ ProtocolError::Server { .. }) => failed = Some(e),
                Err(e) => return Err(e),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// `START_REPLICATION [SLOT s] PHYSICAL X/Y TIMELINE t`: afterwards, [`Self::next`] yields the
    /// stream.
    pub async fn start(&mut self, slot: Option<&str>, from: u64, timeline: u32) -> Result<()> {
        let slot = slot.map(|s| format!("SLOT {s} ")).unwrap_or_default();
        let sql = format!(
            "START_REPLICATION {slot}PHYSICAL {} TIMELINE {timeline}",
            fmt_lsn(from)
        );
        let mut out = BytesMut::new();
        postgres_protocol::message::frontend::query(&sql, &mut out)?;
        self.send(&out).await?;
        loop {
            let m = self.recv().await?;
            match m.tag {
                // CopyBothResponse.
                b'W' => return Ok(()),
                b'N' | b'S' => {}
                other => return Err(unexpected(other, "START_REPLICATION")),
            }
        }
    }

    /// The next message of the stream.
    pub async fn next(&mut self) -> Result<Streamed> {
        loop {
            let m = self.recv().await?;
            match m.tag {
                b'd' => {
                    let mut b = m.body;
                    if b.is_empty() {
                        continue;
                    }
                    match b.get_u8() {
                        b'w' => {
                            if b.len() < 24 {
                                return Err(ProtocolError::Unexpected("short XLogData".into()));
                            }
                            let start = b.get_u64();
                            let server_end = b.get_u64();
                            let _sent_at = b.get_u64();
                            return Ok(Streamed::Wal {
                                start,
                                server_end,
                                data: b,
                            });
                        }
                        b'k' => {
                            if b.len() < 17 {
                                return Err(ProtocolError::Unexpected("short keepalive".into()));
                            }
                            let server_end = b.get_u64();
                            let _sent_at = b.get_u64();
                            return Ok(Streamed::Keepalive {
                                server_end,
                                reply_requested: b.get_u8() == 1,
                            });
                        }
                        _ => continue,
                    }
                }
                b'c' => return Ok(Streamed::Done),
                b'N' => {}
                other => return Err(unexpected(other, "streaming")),
            }
        }
    }

    /// A standby status update: the server may drop WAL before `flushed` from the slot, and a
    /// synchronous commit waits for its WAL to be reported flushed.
    pub async fn report(&mut self, written: u64, flushed: u64, reply: bool) -> Result<()> {
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(written);
        payload.put_u64(flushed);
        payload.put_u64(flushed);
        payload.put_i64(pg_now());
        payload.put_u8(u8::from(reply));
        let mut out = BytesMut::new();
        out.put_u8(b'd');
        out.put_u32(4 + payload.len() as u32);
        out.extend_from_slice(&payload);
        self.send(&out).await
    }
}

/// Microseconds since 2000-01-01, PostgreSQL's epoch.
fn pg_now() -> i64 {
    const PG_EPOCH: u64 = 946_684_800;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.as_micros() as i64 - (PG_EPOCH as i64) * 1_000_000
}

pub fn fmt_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

fn get_i32(b: &mut Bytes) -> Result<i32> {
    if b.len() < 4 {
        return Err(ProtocolError::Unexpected("short message".into()));
    }
    Ok(b.get_i32())
}

fn data_row(mut b: Bytes) -> Result<Vec<Option<String>>> {
    if b.len() < 2 {
        return Err(ProtocolError::Unexpected("short DataRow".into()));
    }
    let n = b.get_u16();
    let mut row = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = get_i32(&mut b)?;
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        if b.len() < len {
            return Err(ProtocolError::Unexpected("short DataRow value".into()));
        }
        row.push(Some(String::from_utf8_lossy(&b.split_to(len)).into_owned()));
    }
    Ok(row)
}

fn server_error(body: &[u8]) -> ProtocolError {
    let (mut severity, mut code, mut message) = (String::new(), String::new(), String::new());
    for field in body.split(|c| *c == 0) {
        let Some((&t, v)) = field.split_first() else {
            continue;
        };
        let v = String::from_utf8_lossy(v).into_owned();
        match t {
            b'V' => severity = v,
            b'C' => code = v,
            b'M' => message = v,
            _ => {}
        }
    }
    ProtocolError::Server {
        severity,
        code,
        message,
    }
}

fn unexpected(tag: u8, during: &str) -> ProtocolError {
    ProtocolError::Unexpected(format!("message `{}` during {during}", tag as char))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_print_as_postgresql_does() {
        assert_eq!(fmt_lsn(0x1_0000_00A8), "1/A8");
        assert_eq!(fmt_lsn(0x1600_0000), "0/16000000");
    }

    #[test]
    fn error_fields_are_read() {
        let body = b"SERROR\0VERROR\0C42501\0Mmust be superuser or replication role\0\0";
        let e = server_error(body);
        assert_eq!(e.code(), Some("42501"));
        assert!(e.to_string().contains("replication role"), "{e}");
    }
}
