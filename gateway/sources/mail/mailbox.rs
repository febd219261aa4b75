//! The hub's mailbox over IMAP: TLS from the first byte or STARTTLS (never plain), with the
//! system's CAs plus `mail.ca_file`, and the host name checked against the certificate.
//!
//! The TLS layer is OpenSSL through the `openssl` crate the gateway already uses, under the
//! `imap` crate's protocol code: `imap` only builds its own TLS with native-tls or rustls and
//! has no hook for an extra CA, which a hub with a private CA needs.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslStream};

use crate::config::{Mail, Security, Server};

/// A command the server does not answer within this fails, and the session is opened again.
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// Connecting gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the mailbox cannot be used now (the channel reconnects with back-off).
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    /// The network or the TLS layer.
    #[error("{server}: {error}")]
    Io {
        /// `host:port`.
        server: String,
        /// Why.
        error: io::Error,
    },
    /// TLS set-up or handshake (a certificate the CAs do not vouch for, a wrong host name).
    #[error("{server}: TLS: {error}")]
    Tls {
        /// `host:port`.
        server: String,
        /// Why.
        error: String,
    },
    /// The server refused or broke the protocol.
    #[error("{server}: {error}")]
    Imap {
        /// `host:port`.
        server: String,
        /// Why.
        error: Box<imap::Error>,
    },
    /// No password configured.
    #[error(
        "no password for {user}: set mail.password_file, ${env} or $CREDENTIALS_DIRECTORY/{credential}"
    )]
    NoPassword {
        /// The user.
        user: String,
        /// The variable looked at.
        env: String,
        /// The systemd credential looked at.
        credential: &'static str,
    },
    /// The password could not be read.
    #[error("reading the mail password: {0}")]
    Password(#[from] crate::keyring::KeyringError),
    /// STARTTLS is not offered: the session would be in the clear.
    #[error("{server} does not offer STARTTLS; the gateway never logs in without TLS")]
    NoStartTls {
        /// `host:port`.
        server: String,
    },
}

impl MailboxError {
    /// Whether the mail server refused, garbled or hung up on its answer (NO, BAD, BYE, the
    /// connection closed, a response the parser cannot read): if that keeps happening on one
    /// mail, the mail is at fault. (Dovecot answers a FETCH of a mail its storage cannot read
    /// with BYE and closes.) A network error or a timeout never counts against a mail.
    pub fn is_the_mails(&self) -> bool {
        match self {
            MailboxError::Imap { error, .. } => matches!(
                **error,
                imap::Error::No(_)
                    | imap::Error::Bad(_)
                    | imap::Error::Bye(_)
                    | imap::Error::ConnectionLost
                    | imap::Error::Parse(_)
                    | imap::Error::Unexpected(_)
                    | imap::Error::TagMismatch(_)
            ),
            _ => false,
        }
    }
}

/// The TLS connection the IMAP session runs over. A read timeout always applies: `imap`
/// clears it after IDLE (`None`), which here means [`IO_TIMEOUT`] again.
pub struct Stream(SslStream<TcpStream>);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl imap::extensions::idle::SetReadTimeout for Stream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> imap::Result<()> {
        self.0
            .get_ref()
            .set_read_timeout(Some(timeout.unwrap_or(IO_TIMEOUT)))
            .map_err(imap::Error::Io)
    }
}

/// The label used in messages and logs.
pub fn label(server: &Server) -> String {
    format!("{}:{}", server.host, server.port)
}

/// TCP to `server`, with timeouts.
pub fn tcp(server: &Server) -> Result<TcpStream, MailboxError> {
    let io = |error| MailboxError::Io {
        server: label(server),
        error,
    };
    let addrs = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .map_err(io)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(tcp) => {
                tcp.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
                tcp.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
                return Ok(tcp);
            }
            Err(e) => last = e,
        }
    }
    Err(io(last))
}

fn tls(
    server: &Server,
    ca: Option<&std::path::Path>,
    tcp: TcpStream,
) -> Result<Stream, MailboxError> {
    let fail = |error: String| MailboxError::Tls {
        server: label(server),
        error,
    };
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| fail(e.to_string()))?;
    if let Some(ca) = ca {
        b.set_ca_file(ca)
            .map_err(|e| fail(format!("mail.ca_file {}: {e}", ca.display())))?;
    }
    let stream = b
        .build()
        .connect(&server.host, tcp)
        .map_err(|e| fail(e.to_string()))?;
    Ok(Stream(stream))
}

/// The password of `server`, read now (a changed file is picked up at the next connection).
pub fn password(server: &Server, credential: &'static str) -> Result<String, MailboxError> {
    use age::secrecy::ExposeSecret;
    match server.password.read_credential(credential)? {
        Some(p) => Ok(p.expose_secret().to_owned()),
        None => Err(MailboxError::NoPassword {
            user: server.user.clone(),
            env: server.password.env.clone(),
            credential,
        }),
    }
}

/// Asks for TLS on a plain session whose greeting and capabilities were read (`imap` has no
/// public command call on an unauthenticated client). Read a byte at a time: nothing after
/// the tagged answer may be consumed, the TLS handshake starts right after it.
fn starttls(mut tcp: TcpStream) -> io::Result<TcpStream> {
    tcp.write_all(b"S0 STARTTLS\r\n")?;
    // Bounded in lines as in bytes: a server that never answers the command is given up on.
    for _ in 0..64 {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            if line.len() > 8192 {
                return Err(io::Error::other(
                    "the server's answer to STARTTLS is too long",
                ));
            }
            if tcp.read(&mut byte)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            line.push(byte[0]);
        }
        if let Some(rest) = line.strip_prefix(b"S0 ") {
            return if rest.starts_with(b"OK") {
                Ok(tcp)
            } else {
                Err(io::Error::other(format!(
                    "STARTTLS refused: {}",
                    String::from_utf8_lossy(rest).trim()
                )))
            };
        }
    }
    Err(io::Error::other(
        "the server sent 64 lines without answering STARTTLS",
    ))
}

/// A logged-in session with the watched folder selected.
pub struct Mailbox {
    session: imap::Session<Stream>,
    server: String,
    can_move: bool,
    can_idle: bool,
    /// UIDs name the same mail only while this stays the same.
    pub uid_validity: Option<u32>,
}

impl Mailbox {
    /// Connects, logs in and selects `mail.folder`.
    pub fn open(mail: &Mail) -> Result<Mailbox, MailboxError> {
        let server = &mail.imap;
        let name = label(server);
        let err = |error| MailboxError::Imap {
            server: name.clone(),
            error: Box::new(error),
        };
        let tcp = tcp(server)?;
        let stream = match server.security {
            Security::Tls => tls(server, mail.ca_file.as_deref(), tcp)?,
            Security::StartTls => {
                let mut plain = imap::Client::new(tcp);
                plain.read_greeting().map_err(err)?;
                if !plain.capabilities().map_err(err)?.has_str("STARTTLS") {
                    return Err(MailboxError::NoStartTls { server: name });
                }
                let tcp = plain.into_inner().map_err(err)?;
                let tcp = starttls(tcp).map_err(|error| MailboxError::Io {
                    server: name.clone(),
                    error,
                })?;
                tls(server, mail.ca_file.as_deref(), tcp)?
            }
        };
        let mut client = imap::Client::new(stream);
        if server.security == Security::Tls {
            client.read_greeting().map_err(err)?;
        }
        let password = password(server, crate::config::IMAP_CREDENTIAL)?;
        let mut session = client
            .login(&server.user, &password)
            .map_err(|(e, _)| err(e))?;
        let caps = session.capabilities().map_err(err)?;
        let (can_move, can_idle) = (caps.has_str("MOVE"), caps.has_str("IDLE"));
        // A mail can only leave the folder once it has somewhere to go.
        for folder in [&mail.processed_folder, &mail.rejected_folder] {
            let exists = session
                .list(None, Some(folder))
                .map_err(err)?
                .iter()
                .any(|n| n.name() == folder.as_str());
            if !exists {
                session.create(folder).map_err(err)?;
                tracing::info!(folder = %folder, "mail folder created");
            }
        }
        let selected = session.select(&mail.folder).map_err(err)?;
        Ok(Mailbox {
            session,
            server: name,
            can_move,
            can_idle,
            uid_validity: selected.uid_validity,
        })
    }

    fn err(&self, error: imap::Error) -> MailboxError {
        MailboxError::Imap {
            server: self.server.clone(),
            error: Box::new(error),
        }
    }

    /// The UIDs of every mail in the folder, oldest first.
    pub fn uids(&mut self) -> Result<Vec<u32>, MailboxError> {
        let found = self.session.uid_search("ALL").map_err(|e| self.err(e))?;
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Runs `UID FETCH uid items` and hands `pick` the answer for that mail (`None`: it is
    /// gone).
    fn fetch_one<T>(
        &mut self,
        uid: u32,
        items: &str,
        pick: impl Fn(&imap::types::Fetch<'_>) -> Option<T>,
    ) -> Result<Option<T>, MailboxError> {
        let fetches = self
            .session
            .uid_fetch(uid.to_string(), items)
            .map_err(|e| self.err(e))?;
        Ok(fetches.iter().find(|f| f.uid == Some(uid)).and_then(pick))
    }

    /// The size of mail `uid` in bytes (`None`: it is gone).
    pub fn size(&mut self, uid: u32) -> Result<Option<u64>, MailboxError> {
        self.fetch_one(uid, "RFC822.SIZE", |f| f.size.map(u64::from))
    }

    /// Mail `uid` as sent, without marking it seen (`None`: it is gone).
    pub fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>, MailboxError> {
        self.fetch_one(uid, "BODY.PEEK[]", |f| f.body().map(<[u8]>::to_vec))
    }

    /// The header of mail `uid` only (for a mail too large to download), without marking it
    /// seen.
    pub fn fetch_header(&mut self, uid: u32) -> Result<Option<Vec<u8>>, MailboxError> {
        self.fetch_one(uid, "BODY.PEEK[HEADER]", |f| {
            f.header().or(f.body()).map(<[u8]>::to_vec)
        })
    }

    /// Moves mail `uid` to `folder` (MOVE, or COPY + delete + expunge where MOVE is missing).
    pub fn move_to(&mut self, uid: u32, folder: &str) -> Result<(), MailboxError> {
        let set = uid.to_string();
        let r = if self.can_move {
            self.session.uid_mv(&set, folder)
        } else {
            self.session
                .uid_copy(&set, folder)
                .and_then(|()| {
                    self.session
                        .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                        .map(drop)
                })
                .and_then(|()| self.session.uid_expunge(&set).map(drop))
        };
        r.map_err(|e| self.err(e))
    }

    /// Waits for new mail: IDLE (when offered and wanted) until the server reports a change or
    /// `longest` passes; otherwise a NOOP after sleeping `longest`, in slices, so that a
    /// shutdown is seen within a second.
    pub fn wait(
        &mut self,
        idle: bool,
        longest: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), MailboxError> {
        if idle && self.can_idle {
            let mut handle = self.session.idle();
            handle.timeout(longest).keepalive(false);
            return handle
                .wait_while(imap::extensions::idle::stop_on_any)
                .map(drop)
                .map_err(|e| MailboxError::Imap {
                    server: self.server.clone(),
                    error: Box::new(e),
                });
        }
        let until = std::time::Instant::now() + longest;
        while std::time::Instant::now() < until && !stop() {
            std::thread::sleep(Duration::from_millis(250));
        }
        self.session.noop().map_err(|e| self.err(e))
    }

    /// Logs out (best effort).
    pub fn close(mut self) {
        let _ = self.session.logout();
    }
}
