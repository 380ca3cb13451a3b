//! `wanco-gateway`: the stable address clients of a migrating WASI server
//! connect to.
//!
//! The gateway ([`server::Gateway`], the `wanco gateway` command) accepts
//! client TCP connections on one address per program and forwards each
//! over a single mutually-authenticated TLS link per program, which the
//! program's runtime opens ([`client::Client`], used by `wanco-wasi` for a
//! `--tcplisten tls://GATEWAY:PORT/PROGRAM` listener). The runtime
//! presents a certificate valid for the DNS name `PROGRAM`: only it may
//! attach to that program's connections.
//!
//! Both sides count the bytes of each stream. The gateway keeps the bytes
//! a client sent until the runtime acknowledges that the guest read them,
//! so that a runtime restored from a snapshot elsewhere (which records,
//! per connection, the bytes delivered to the guest and accepted from it)
//! reattaches and every stream continues at the exact byte. Clients keep
//! their TCP connections: they see a pause. The protocol is in
//! [`proto::Msg`].
#![deny(missing_docs)]

pub mod client;
mod link;
pub mod proto;
pub mod server;

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
    /// Certificates, the TLS handshake, or the link's setup.
    #[error(transparent)]
    Transport(#[from] wanco_transport::Error),
    /// A frame that is not a message of this protocol, or a message out of place.
    #[error("gateway link, at byte {offset}: {message}")]
    Protocol {
        /// Byte offset (of the decrypted stream) where the frame starts.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// The gateway refused this runtime.
    #[error("the gateway refused the link: {0}")]
    Refused(String),
    /// A bad address or setting.
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub(crate) fn io(during: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let during = during.into();
        move |error| Error::Io { during, error }
    }
}

/// A result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
