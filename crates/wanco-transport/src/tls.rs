//! Mutual TLS (rustls, ring provider): both sides present a certificate,
//! each verified against the CA the other side was given.

use crate::{Conn, Error, Result};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The PEM files of one side.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// This side's certificate (chain).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA certificate(s) the other side's certificate must be signed by.
    pub ca: PathBuf,
}

// `ring` rather than rustls' default `aws-lc-rs` (which needs cmake and a C
// toolchain for each target); rustls marks ring's provider deprecated only
// because it lacks the post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).map_err(|e| Error::Tls(format!("cannot read certificate file {}: {e}", path.display())))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{}: not PEM certificates: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{}: no certificate in it (expected PEM `BEGIN CERTIFICATE`)", path.display())));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(path).map_err(|e| Error::Tls(format!("cannot read key file {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| Error::Tls(format!("{}: not a PEM private key: {e}", path.display())))?
        .ok_or_else(|| Error::Tls(format!("{}: no private key in it (expected PEM `BEGIN PRIVATE KEY`)", path.display())))
}

fn roots(path: &Path) -> Result<Arc<rustls::RootCertStore>> {
    let mut store = rustls::RootCertStore::empty();
    for c in certs(path)? {
        store.add(c).map_err(|e| Error::Tls(format!("{}: not a usable CA certificate: {e}", path.display())))?;
    }
    Ok(Arc::new(store))
}

/// Connect to `host:port` and do the TLS handshake, presenting `files.cert`
/// and checking the agent's certificate (for `host`) against `files.ca`.
pub fn connect_tls(host: &str, port: u16, files: &TlsFiles) -> Result<Conn> {
    let (conn, tcp) = tls_client(host, port, files)?;
    let socket = tcp.try_clone().map_err(Error::io("socket"))?;
    Ok(Conn::with_socket(Box::new(rustls::StreamOwned::new(conn, tcp)), socket))
}

/// Connect to `host:port` and do the mutual-TLS handshake (as
/// [`connect_tls`]), giving the TLS state and the socket separately, for a
/// caller that reads and writes from different threads (`wanco-gateway`).
pub fn tls_client(host: &str, port: u16, files: &TlsFiles) -> Result<(rustls::ClientConnection, TcpStream)> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots(&files.ca)?)
        .with_client_auth_cert(certs(&files.cert)?, key(&files.key)?)
        .map_err(|e| Error::Tls(format!("{} / {}: {e}", files.cert.display(), files.key.display())))?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| Error::Tls(format!("`{host}` is not a valid server name: {e}")))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| Error::Tls(e.to_string()))?;
    let mut tcp = connect_tcp(host, port)?;
    // Finish the handshake now, so that a refused certificate is reported as such.
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| Error::Tls(format!("handshake with {host}:{port} failed: {e}")))?;
    }
    // In TLS 1.3 the agent judges this side's certificate after the client's
    // handshake is over: it answers with session tickets, or with an alert.
    // Read that answer now, so that a refused certificate is reported as such
    // (not as a broken pipe on the first message).
    let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    match conn.complete_io(&mut tcp) {
        Err(e) if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            return Err(Error::Tls(format!("{host}:{port} refused this side's certificate ({}): {e}", files.cert.display())))
        }
        _ => {}
    }
    let _ = tcp.set_read_timeout(None);
    Ok((conn, tcp))
}

/// A plain TCP connection (`tcp://`; also under [`connect_tls`]).
pub fn connect_tcp(host: &str, port: u16) -> Result<TcpStream> {
    let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(Error::io(format!("cannot resolve {host}:{port}")))?.collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, std::time::Duration::from_secs(10)) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Io {
        during: format!("cannot connect to {host}:{port}"),
        error: last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")),
    })
}

/// The listening side of `tls://` (or of `tcp://` without `files`).
pub struct TlsServer {
    listener: TcpListener,
    config: Option<Arc<rustls::ServerConfig>>,
}

impl TlsServer {
    /// Listen on `addr`; with `files`, require a client certificate signed by
    /// `files.ca`. Without, plaintext.
    pub fn bind(addr: &str, files: Option<&TlsFiles>) -> Result<TlsServer> {
        let config = match files {
            None => None,
            Some(f) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(&f.ca)?, provider())
                    .build()
                    .map_err(|e| Error::Tls(format!("{}: {e}", f.ca.display())))?;
                let c = rustls::ServerConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| Error::Tls(e.to_string()))?
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(certs(&f.cert)?, key(&f.key)?)
                    .map_err(|e| Error::Tls(format!("{} / {}: {e}", f.cert.display(), f.key.display())))?;
                Some(Arc::new(c))
            }
        };
        let listener = TcpListener::bind(addr).map_err(Error::io(format!("cannot listen on {addr}")))?;
        Ok(TlsServer { listener, config })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> Result<std::net::SocketAddr> {
        self.listener.local_addr().map_err(Error::io("local address"))
    }

    /// Accept the next connection and finish its handshake (a client without
    /// a valid certificate is an error here, for this connection only).
    pub fn accept(&self) -> Result<(Conn, std::net::SocketAddr)> {
        let (tcp, peer) = self.accept_tcp()?;
        let socket = tcp.try_clone().map_err(Error::io("socket"))?;
        if self.config.is_none() {
            return Ok((Conn::with_socket(Box::new(tcp), socket), peer));
        }
        let (tls, tcp) = self.handshake(tcp, peer)?;
        Ok((Conn::with_socket(Box::new(rustls::StreamOwned::new(tls, tcp)), socket), peer))
    }

    /// Accept the next TCP connection (no handshake yet: do it with
    /// [`TlsServer::handshake`], e.g. on a thread of its own).
    pub fn accept_tcp(&self) -> Result<(TcpStream, std::net::SocketAddr)> {
        let (tcp, peer) = self.listener.accept().map_err(Error::io("accept"))?;
        let _ = tcp.set_nodelay(true);
        Ok((tcp, peer))
    }

    /// The server side of the mutual-TLS handshake on an accepted
    /// connection: the TLS state (the client's certificate is in
    /// `peer_certificates()`) and the socket, separately. An error on a
    /// plaintext server.
    pub fn handshake(&self, mut tcp: TcpStream, peer: std::net::SocketAddr) -> Result<(rustls::ServerConnection, TcpStream)> {
        let Some(config) = &self.config else {
            return Err(Error::Tls("this server has no certificate (plaintext)".into()));
        };
        let mut tls = rustls::ServerConnection::new(config.clone()).map_err(|e| Error::Tls(e.to_string()))?;
        // A peer that never completes the handshake must not block the agent forever.
        let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)));
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).map_err(|e| Error::Tls(format!("handshake with {peer} failed: {e}")))?;
        }
        let _ = tcp.set_read_timeout(None);
        Ok((tls, tcp))
    }
}
