//! `wanco-transport`: how `wanco migrate` (the source) and `wanco agent`
//! (the destination) talk.
//!
//! * [`Message`]: the messages, each one MessagePack value (`rmp-serde`,
//!   named fields) in a frame: a 4-byte big-endian length, then the value
//!   ([`Conn`]). [`PROTOCOL_VERSION`] is exchanged first, in [`Hello`];
//!   a peer speaking another version is refused.
//! * Transports ([`Dest`]): `ssh://[user@]host[:port]` runs the system `ssh`
//!   client, which starts `wanco agent --stdio` on the far side and carries
//!   the frames over its standard input and output ([`connect_ssh`]);
//!   `tls://host:port` connects to a `wanco agent --listen` with mutual TLS
//!   (rustls: both sides present a certificate signed by the CA the other
//!   trusts, [`connect_tls`], [`TlsServer`]); `tcp://host:port` is the same
//!   protocol in plaintext, for tests and trusted links only (the caller
//!   must ask for it explicitly).
//!
//! The phases of a migration and which message belongs to which are
//! described on [`Message`]; `docs/architecture.md` ("Live migration") has
//! the whole sequence, and how pre-copy rounds and post-copy page requests
//! fit in without changing the framing.
#![deny(missing_docs)]

mod conn;
mod dest;
mod message;
mod tls;

pub use conn::{Conn, Counters};
pub use dest::{connect_ssh, shell_quote, Dest, SshOptions};
pub use message::{FileEntry, Hello, Message, Prepare, Stream, PROTOCOL_VERSION};
pub use tls::{connect_tcp, connect_tls, tls_client, TlsFiles, TlsServer};
/// The TLS library, for callers of [`tls_client`] and [`TlsServer::handshake`].
pub use rustls;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error while doing `during`.
    #[error("{during}: {error}")]
    Io {
        /// What was being done.
        during: String,
        /// The error.
        error: std::io::Error,
    },
    /// The peer closed the connection (at byte `offset` of what it sent).
    #[error("the connection was closed by the other side (after {offset} bytes received)")]
    Closed {
        /// Bytes received on the connection before it closed.
        offset: u64,
    },
    /// Nothing arrived within the time limit ([`Conn::set_read_timeout`]):
    /// the other side or the link is gone.
    #[error("no answer within the time limit (after {offset} bytes received): the other side or the link is down")]
    Timeout {
        /// Bytes received on the connection before.
        offset: u64,
    },
    /// A frame that is not a message of this protocol.
    #[error("bad frame at byte {offset} of the connection: {message}")]
    Frame {
        /// Byte offset of the frame in what was received.
        offset: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A destination that cannot be parsed (`ssh://…`, `tls://…`, `tcp://…`).
    #[error("bad destination `{dest}`: {message} (expected ssh://[user@]host[:port], tls://host:port or tcp://host:port)")]
    Dest {
        /// The destination as given.
        dest: String,
        /// What is wrong with it.
        message: String,
    },
    /// Certificates, keys or the TLS handshake.
    #[error("TLS: {0}")]
    Tls(String),
    /// The peer speaks another protocol version, or sent a message that does
    /// not belong in the current phase.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl Error {
    pub(crate) fn io(during: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let during = during.into();
        move |error| Error::Io { during, error }
    }
}

/// A result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
